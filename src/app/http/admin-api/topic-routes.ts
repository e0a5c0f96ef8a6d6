import { z } from 'zod';
import { ErrorCodes, RowcastError } from '../../../model/errors.js';
import { testFilterPolicy } from '../../../admin/actions/test-filter-policy.js';
import { listTopics } from '../../../admin/inspect/declarations.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { name, parse } from './api-support.js';

const attributeValue = z.union([z.string(), z.number(), z.array(z.string())], {
  error: 'attribute values are strings (or numbers, or arrays of strings)',
});
const filterTestBody = z
  .object({ topic: name.optional(), message: z.unknown(), attributes: z.record(z.string(), attributeValue).optional() })
  .strict();

/** Topics and the filter-policy tester. */
export const topicRoutes: HttpRoutePlugin = (app, { pool }) => {
  app.get('/topics', async () => ({ items: await listTopics(pool), nextCursor: null }));
  app.post('/filter-policy/test', async (request) => {
    const body = parse(filterTestBody, request.body, 'body');
    if (body.message === undefined)
      throw new RowcastError(
        ErrorCodes.INVALID_ARGUMENT,
        'Invalid request body: message is required (the message body to test: a JSON value, or a string).',
      );
    return {
      subscriptions: await testFilterPolicy(pool, {
        topic: body.topic,
        message: body.message,
        attributes: body.attributes,
      }),
    };
  });
};

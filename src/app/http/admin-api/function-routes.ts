import { z } from 'zod';
import { pauseFunction, resumeFunction } from '../../../admin/actions/function-actions.js';
import { listFunctions } from '../../../admin/inspect/declarations.js';
import { listInvocationPage } from '../../../admin/inspect/invocations.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { name, nameParams, page, parse } from './api-support.js';

const invocationsQuery = z.object({
  ...page,
  function: name.optional(),
  status: z.enum(['pending', 'in_flight', 'done', 'failed']).optional(),
});

/** Functions: read, pause/resume (their queued invocations wait meanwhile), and invocation history. */
export const functionRoutes: HttpRoutePlugin = (app, { pool }) => {
  app.get('/functions', async () => ({ items: await listFunctions(pool), nextCursor: null }));
  app.post('/functions/:name/pause', (request) => pauseFunction(pool, parse(nameParams, request.params, 'path').name));
  app.post('/functions/:name/resume', (request) =>
    resumeFunction(pool, parse(nameParams, request.params, 'path').name),
  );
  app.get('/invocations', (request) => listInvocationPage(pool, parse(invocationsQuery, request.query, 'query')));
};

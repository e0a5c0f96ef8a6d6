import { z } from 'zod';
import { batchOption, getBackfill, startBackfill } from '../../../capture/backfill.js';
import { ErrorCodes, RowcastError } from '../../../model/errors.js';
import { replayCapture } from '../../../admin/admin-actions.js';
import { listCaptures, listEvents } from '../../../admin/inspect.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { name, nameParams, page, parse, time } from './api-support.js';

const replayBody = z.object({ subscription: name, since: time, until: time.optional() }).strict();
const backfillBody = z
  .object({
    where: z.string().min(1).max(10_000).optional(),
    // Checked as the CLI's --batch is (batchOption): a number, or its text as a form sends it.
    batch: z.union([z.number(), z.string().max(40)]).optional(),
    restart: z.boolean().optional(),
  })
  .strict();
const eventsQuery = z.object({
  ...page,
  capture: name.optional(),
  table: z.string().min(1).max(200).optional(),
  topic: name.optional(),
});

/**
 * Captures and their events: read, replay a capture's events from a point in time to one subscription, and
 * backfill the rows its table holds now (started in this process, its progress in the store).
 */
export const captureRoutes: HttpRoutePlugin = (app, { pool, sources }) => {
  app.get('/captures', async () => ({ items: await listCaptures(pool), nextCursor: null }));
  app.get('/events', (request) => listEvents(pool, parse(eventsQuery, request.query, 'query')));
  app.post('/captures/:name/replay', async (request) => {
    const body = parse(replayBody, request.body, 'body');
    return { replayed: await replayCapture(pool, parse(nameParams, request.params, 'path').name, body) };
  });
  app.post('/captures/:name/backfill', async (request, reply) => {
    const body = parse(backfillBody, request.body ?? {}, 'body');
    const progress = await startBackfill(pool, parse(nameParams, request.params, 'path').name, {
      ...body,
      batch: batchOption(body.batch),
      sources,
    });
    return reply.code(202).send(progress);
  });
  app.get('/captures/:name/backfill', async (request) => {
    const { name: capture } = parse(nameParams, request.params, 'path');
    const progress = await getBackfill(pool, capture);
    if (!progress)
      throw new RowcastError(
        ErrorCodes.NOT_FOUND,
        `Capture ${capture} has had no backfill; start one with POST /api/captures/${capture}/backfill.`,
      );
    return progress;
  });
};

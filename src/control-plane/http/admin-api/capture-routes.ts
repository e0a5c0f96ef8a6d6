import { z } from 'zod';
import { replayCapture } from '../../admin-actions.js';
import { listCaptures, listEvents } from '../../inspect.js';
import type { HttpRoutePlugin } from '../server.js';
import { name, nameParams, page, parse, time } from './api-support.js';

const replayBody = z.object({ subscription: name, since: time, until: time.optional() }).strict();
const eventsQuery = z.object({ ...page, capture: name.optional(), table: z.string().min(1).max(200).optional(), topic: name.optional() });

/** Captures and their events: read, and replay a capture's events from a point in time to one subscription. */
export const captureRoutes: HttpRoutePlugin = (app, { pool }) => {
  app.get('/captures', async () => ({ items: await listCaptures(pool), nextCursor: null }));
  app.get('/events', (request) => listEvents(pool, parse(eventsQuery, request.query, 'query')));
  app.post('/captures/:name/replay', async (request) => {
    const body = parse(replayBody, request.body, 'body');
    return { replayed: await replayCapture(pool, parse(nameParams, request.params, 'path').name, body) };
  });
};

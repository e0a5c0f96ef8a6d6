import { z } from 'zod';
import { sendTestMessage, pauseSubscription, resumeSubscription } from '../../../admin/actions/subscription-actions.js';
import { getSubscription, listSubscriptions } from '../../../admin/inspect/declarations.js';
import { redrive } from '../../../admin/actions/delivery-actions.js';
import { rotateSecret } from '../../../admin/actions/signing-secrets.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { nameParams, parse, time } from './api-support.js';

const redriveBody = z.object({ since: time.optional(), until: time.optional() }).strict();
const testBody = z.object({ subject: z.string().max(100).optional(), message: z.unknown().optional() }).strict();
const rotateBody = z.object({ overlap: z.union([z.string(), z.number().int().min(0)]).optional() }).strict();

/** Subscriptions: read (never their secrets), pause/resume, redrive their dead deliveries, a test message, secret rotation. */
export const subscriptionRoutes: HttpRoutePlugin = (app, { pool }) => {
  const named = (params: unknown) => parse(nameParams, params, 'path').name;
  app.get('/subscriptions', async () => ({ items: await listSubscriptions(pool), nextCursor: null }));
  app.get('/subscriptions/:name', (request) => getSubscription(pool, named(request.params)));
  app.post('/subscriptions/:name/pause', async (request) => {
    const name = named(request.params);
    await pauseSubscription(pool, name);
    return getSubscription(pool, name);
  });
  app.post('/subscriptions/:name/resume', async (request) => {
    const name = named(request.params);
    await resumeSubscription(pool, name);
    return getSubscription(pool, name);
  });
  app.post('/subscriptions/:name/redrive', async (request) => {
    const body = parse(redriveBody, request.body, 'body');
    return {
      redriven: await redrive(pool, { subscription: named(request.params), since: body.since, until: body.until }),
    };
  });
  app.post('/subscriptions/:name/test', async (request) => {
    const body = parse(testBody, request.body, 'body');
    return { messageId: await sendTestMessage(pool, named(request.params), body) };
  });
  app.post('/subscriptions/:name/rotate-secret', async (request) => {
    const body = parse(rotateBody, request.body, 'body');
    const rotated = await rotateSecret(pool, named(request.params), { overlap: body.overlap });
    return { secret: rotated.secret, previousSecretExpiresAt: rotated.previousSecretExpiresAt };
  });
};

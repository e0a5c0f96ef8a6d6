import { z } from 'zod';
import { redriveDelivery, resendDelivery } from '../../../admin/actions/delivery-actions.js';
import { searchDeliveries } from '../../../admin/inspect/delivery-search.js';
import { DELIVERY_STATES, getDelivery, listDeliveries } from '../../../admin/inspect/deliveries.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { idParams, name, page, parse } from './api-support.js';

const deliveriesQuery = z.object({
  ...page,
  subscription: name.optional(),
  topic: name.optional(),
  status: z.enum(DELIVERY_STATES).optional(),
  // Find a row's deliveries (delivery-search.ts).
  capture: name.optional(),
  op: z.string().max(16).optional(),
  rowKey: z.string().max(4096).optional(),
});
const deadLettersQuery = z.object({ ...page, subscription: name.optional(), topic: name.optional() });

/** Deliveries (one message to one subscription): lists, detail with attempt log, dead letters, redrive and resend of one. */
export const deliveryRoutes: HttpRoutePlugin = (app, { pool }) => {
  app.get('/deliveries', (request) => searchDeliveries(pool, parse(deliveriesQuery, request.query, 'query')));
  app.get('/deliveries/:id', (request) => getDelivery(pool, parse(idParams, request.params, 'path').id));
  app.get('/dead-letters', (request) =>
    listDeliveries(pool, { ...parse(deadLettersQuery, request.query, 'query'), status: 'dead' }),
  );
  app.post('/deliveries/:id/redrive', async (request) => ({
    redriven: await redriveDelivery(pool, parse(idParams, request.params, 'path').id),
  }));
  app.post('/deliveries/:id/resend', async (request) => ({
    resent: await resendDelivery(pool, parse(idParams, request.params, 'path').id),
  }));
};

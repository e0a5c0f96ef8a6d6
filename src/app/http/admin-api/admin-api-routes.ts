import { activity } from '../../../observability/activity.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { apiError, installApiErrors, installJsonBodies } from './api-support.js';
import { captureRoutes } from './capture-routes.js';
import { deliveryRoutes } from './delivery-routes.js';
import { functionRoutes } from './function-routes.js';
import { metricsRoutes } from './metrics-routes.js';
import { overviewRoutes } from './overview-routes.js';
import { subscriptionRoutes } from './subscription-routes.js';
import { tailRoutes } from './tail-routes.js';
import { topicRoutes } from './topic-routes.js';

/** The resources of the admin API, one plugin each (documented in docs/openapi.yaml). */
const API_ROUTES: readonly HttpRoutePlugin[] = [
  overviewRoutes,
  deliveryRoutes,
  subscriptionRoutes,
  functionRoutes,
  captureRoutes,
  topicRoutes,
  tailRoutes,
];

/**
 * The admin HTTP API under /api (JSON; errors as { error: { code, message } }) and /metrics. Every route needs
 * the bearer token when runtime.http.token is set (server.ts checks it before any of these run).
 */
export function adminApiRoutes(): HttpRoutePlugin {
  return async (app, context) => {
    // Rates and charts cover the time since the server started, not since the first API call.
    activity();
    await app.register(
      async (api) => {
        installApiErrors(api, context.log);
        installJsonBodies(api);
        // An audit line per action (never its body: a rotated secret, a test message).
        api.addHook('onResponse', async (request, reply) => {
          if (request.method === 'POST')
            context.log.info(
              { action: request.routeOptions.url, params: request.params, status: reply.statusCode },
              'admin api action',
            );
        });
        api.setNotFoundHandler((request, reply) => {
          void reply
            .code(404)
            .send(
              apiError(
                'not_found',
                `No route ${request.method} ${request.url.split('?')[0]}; docs/openapi.yaml lists the admin API.`,
              ),
            );
        });
        for (const plugin of API_ROUTES) await plugin(api, context);
      },
      { prefix: '/api' },
    );
    await metricsRoutes(app, context);
  };
}

import { ClaimChecks } from '../../routing/claim-check.js';
import type { HttpRoutePlugin } from './route-plugin.js';
import { apiError } from './admin-api/api-support.js';

/**
 * GET /messages/:id/body?expires=…&signature=… — the stored body of a message too large for its topic, for the
 * holder of a claim-check link (the link is the credential, so no bearer token). 403 for a bad or expired
 * signature, 404 once retention has removed the message.
 */
export function messageBodyRoutes(): HttpRoutePlugin {
  return async (app, { pool }) => {
    const checks = await ClaimChecks.load(pool, undefined);
    app.get<{ Params: { id: string }; Querystring: { expires?: string; signature?: string } }>(
      '/messages/:id/body',
      { config: { public: true } },
      async (req, reply) => {
        if (!checks.verify(req.params.id, req.query.expires, req.query.signature)) {
          return reply
            .code(403)
            .send(
              apiError(
                'forbidden',
                "This link is not valid or has expired; links last the topic's claimCheckTtl: ask the topic's subscriber to fetch bodies sooner, or raise claimCheckTtl.",
              ),
            );
        }
        const { rows } = await pool.query<{ body: string; content_type: string }>(
          'SELECT body, content_type FROM rowcast.messages WHERE id = $1',
          [req.params.id],
        );
        if (!rows[0])
          return reply
            .code(404)
            .send(apiError('not_found', 'The message is no longer kept: retention removed it (runtime.retention).'));
        return reply
          .header('content-type', rows[0].content_type)
          .header('cache-control', 'private, max-age=60')
          .send(rows[0].body);
      },
    );
  };
}

import { CAPTURE_SLOT_SQL } from '../../../capture/logical-ddl.js';
import { createMetrics, type DatabaseSnapshot } from '../../../observability/metrics.js';
import type { Pool } from '../../../store/pool.js';
import { getLag } from '../../../admin/inspect/overview.js';
import type { HttpRoutePlugin } from '../route-plugin.js';

/** Events are counted once they are this old, so that a transaction committing a little late is still counted. */
const SETTLE = '5 seconds';

/** What the metrics read from the database at scrape time: backlogs from the partial indexes, captures from the BRIN index. */
function databaseReader(pool: Pool): () => Promise<DatabaseSnapshot> {
  let countedUpTo: Date | null = null;
  return async () => {
    const [lag, subscriptions, captures, functions, deliveries, notify, window, slots] = await Promise.all([
      getLag(pool),
      pool.query<{ name: string; protocol: string; state: string }>(
        'SELECT name, protocol, state FROM rowcast.subscriptions',
      ),
      pool.query<{ table: string; op: string }>(
        `SELECT DISTINCT schema_name || '.' || table_name AS "table", op FROM rowcast.captures, jsonb_array_elements_text(settings -> 'capture' -> 'operations') AS op`,
      ),
      pool.query<{ name: string }>('SELECT name FROM rowcast.functions'),
      pool.query<{ subscription: string; state: string; count: number }>(
        `SELECT subscription, state, count(*)::int AS count FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY 1, 2`,
      ),
      pool.query<{ usage: number }>('SELECT pg_notification_queue_usage() AS usage'),
      pool.query<{ upto: Date }>(`SELECT now() - interval '${SETTLE}' AS upto`),
      pool.query<{ slot: string; active: boolean; lag: number }>(CAPTURE_SLOT_SQL),
    ]);
    const upTo = window.rows[0]!.upto;
    let capturedSince: DatabaseSnapshot['capturedSince'] = [];
    if (countedUpTo && upTo > countedUpTo) {
      const { rows } = await pool.query<{ table: string; op: string; count: number }>(
        `SELECT schema_name || '.' || table_name AS "table", op, count(*)::int AS count FROM rowcast.events
          WHERE captured_at >= $1 AND captured_at < $2 GROUP BY 1, 2`,
        [countedUpTo, upTo],
      );
      capturedSince = rows;
    }
    if (!countedUpTo || upTo > countedUpTo) countedUpTo = upTo;
    return {
      stages: (['routing', 'invocations', 'deliveries'] as const).map((stage) => ({ stage, ...lag[stage] })),
      subscriptions: subscriptions.rows,
      captures: captures.rows,
      functions: functions.rows.map((r) => r.name),
      deliveries: deliveries.rows,
      capturedSince,
      notifyQueueUsage: Number(notify.rows[0]!.usage),
      slots: slots.rows.map((r) => ({ slot: r.slot, active: r.active, lagBytes: Math.max(0, r.lag) })),
    };
  };
}

/** GET /metrics: Prometheus text format (bearer token when one is configured, like /api). */
export const metricsRoutes: HttpRoutePlugin = (app, { pool }) => {
  const metrics = createMetrics(databaseReader(pool));
  app.addHook('onClose', async () => metrics.close());
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.render();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(text);
  });
};

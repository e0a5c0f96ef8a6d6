import type { Pool } from '../../store/pool.js';
import { activityRates } from './activity-stats.js';
import {
  type CaptureInfo,
  type FunctionInfo,
  listCaptures,
  listFunctions,
  listSubscriptions,
  listTopics,
  type SubscriptionInfo,
  type TopicInfo,
} from './declarations.js';
import { getStatus } from './status.js';

/* The chain at a glance (the dashboard's overview) and each stage's backlog (also on /metrics). */

export interface StageLag {
  pending: number;
  oldestAgeSeconds: number | null;
}

export interface Lag {
  routing: StageLag;
  invocations: StageLag;
  deliveries: StageLag;
}

/** Pending work and the age of its oldest item, per stage (in-flight work counts as pending). */
export async function getLag(pool: Pool): Promise<Lag> {
  const { rows } = await pool.query(
    `SELECT u.n AS events, extract(epoch FROM now() - u.oldest) AS events_age,
            (SELECT count(*) FROM rowcast.invocations WHERE state IN ('pending', 'in_flight'))::bigint AS invocations,
            (SELECT extract(epoch FROM now() - min(created_at)) FROM rowcast.invocations WHERE state IN ('pending', 'in_flight')) AS invocations_age,
            (SELECT count(*) FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight'))::bigint
              + (SELECT coalesce(sum(b.pending + b.in_flight), 0) FROM rowcast.cursors c, rowcast.cursor_backlog(c.subscription) b)::bigint AS deliveries,
            -- What cursors have not passed counts as pending deliveries (rowcast.cursor_backlog).
            (SELECT extract(epoch FROM now() - least(
                      (SELECT min(created_at) FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight')),
                      (SELECT min(b.oldest) FROM rowcast.cursors c, rowcast.cursor_backlog(c.subscription) b)))) AS deliveries_age
       -- Unrouted events are found by the tick, not an index of their own: read once for both figures.
       FROM (SELECT count(*)::bigint AS n, min(captured_at) AS oldest FROM rowcast.unrouted_events()) u`,
  );
  const r = rows[0];
  const age = (v: unknown) => (v === null ? null : Math.max(0, Math.round(Number(v))));
  return {
    routing: { pending: Number(r.events), oldestAgeSeconds: age(r.events_age) },
    invocations: { pending: Number(r.invocations), oldestAgeSeconds: age(r.invocations_age) },
    deliveries: { pending: Number(r.deliveries), oldestAgeSeconds: age(r.deliveries_age) },
  };
}

export interface Overview {
  generatedAt: string;
  captures: CaptureInfo[];
  functions: FunctionInfo[];
  topics: TopicInfo[];
  subscriptions: SubscriptionInfo[];
  lag: Lag;
}

/** The whole chain at a glance: captured tables → functions → topics → subscriptions, with rates and backlogs. */
export async function getOverview(pool: Pool): Promise<Overview> {
  // One status read serves topics and subscriptions, one activity read functions and subscriptions.
  const status = getStatus(pool);
  const rates = activityRates(pool);
  const [captures, functions, topics, subscriptions, lag] = await Promise.all([
    listCaptures(pool),
    listFunctions(pool, undefined, rates),
    listTopics(pool, status),
    listSubscriptions(pool, undefined, status, rates),
    getLag(pool),
  ]);
  return { generatedAt: new Date().toISOString(), captures, functions, topics, subscriptions, lag };
}

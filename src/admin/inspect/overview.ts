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
            i.n AS invocations, extract(epoch FROM now() - i.oldest) AS invocations_age,
            -- What cursors have not passed counts as pending deliveries (rowcast.cursor_backlog).
            d.n + cb.n AS deliveries, extract(epoch FROM now() - least(d.oldest, cb.oldest)) AS deliveries_age
       -- Each backlog is read once for its count and its oldest; unrouted events are found by the tick.
       FROM (SELECT count(*)::bigint AS n, min(captured_at) AS oldest FROM rowcast.unrouted_events()) u,
            (SELECT count(*)::bigint AS n, min(created_at) AS oldest FROM rowcast.invocations WHERE state IN ('pending', 'in_flight')) i,
            (SELECT count(*)::bigint AS n, min(created_at) AS oldest FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight')) d,
            (SELECT coalesce(sum(b.pending + b.in_flight), 0)::bigint AS n, min(b.oldest) AS oldest
               FROM rowcast.cursors c, rowcast.cursor_backlog(c.subscription) b) cb`,
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

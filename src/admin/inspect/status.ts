import { CAPTURE_SLOT_SQL } from '../../capture/logical-ddl.js';
import { redactEndpoint } from '../../observability/redact.js';
import type { Pool } from '../../store/pool.js';

/*
 * `rowcast status`: the backlog of each stage, from the partial indexes of pending and dead work. The admin API's
 * topic and subscription lists (declarations.ts) add rates and settings to it.
 */

export interface SubscriptionStatus {
  name: string;
  topic: string;
  protocol: string;
  /** Where it delivers, credentials redacted. */
  endpoint: string;
  state: 'active' | 'paused' | 'disabled';
  stateReason: string | null;
  /**
   * SNS's handshake (format 'sns'; docs/sns.md): pending until the endpoint confirms (it receives nothing
   * meanwhile), unsubscribed through its UnsubscribeURL. Every other subscription is confirmed.
   */
  confirmation: 'confirmed' | 'pending' | 'unsubscribed';
  /** Who made it: `rowcast apply` (config) or the SNS API (api); apply removes only what the config made. */
  owner: 'config' | 'api';
  pending: number;
  inFlight: number;
  dead: number;
  /** Age of the oldest undelivered (pending or in-flight) delivery, in milliseconds. */
  oldestPendingMs: number | null;
  lastError: string | null;
}

export interface Status {
  events: { unrouted: number; oldestUnroutedMs: number | null };
  /** mode: row or statement (triggers), logical (the write-ahead log), binlog (a MySQL source), or pgoutput (a PostgreSQL source's slot). */
  captures: { name: string; table: string; topic: string; mode: string }[];
  /** The replication slot of logical captures, when there is one: whether a process streams it, the log it holds. */
  logicalCapture: { slot: string; streaming: boolean; lagBytes: number } | null;
  topics: {
    name: string;
    owner: 'config' | 'api';
    subscriptions: number;
    pending: number;
    inFlight: number;
    dead: number;
    unmatched: number;
  }[];
  subscriptions: SubscriptionStatus[];
}

/** Pending, in-flight and dead counts per topic and subscription, and the routing backlog. */
export async function getStatus(pool: Pool): Promise<Status> {
  const [events, captures, slots, subs] = await Promise.all([
    pool.query(
      `SELECT count(*)::int AS unrouted, (extract(epoch FROM now() - min(captured_at)) * 1000)::bigint AS oldest FROM rowcast.unrouted_events()`,
    ),
    pool.query(
      `SELECT name, schema_name, table_name, topic, CASE WHEN settings ->> 'kind' = 'postgres' THEN 'pgoutput' WHEN settings -> 'capture' ? 'source' THEN 'binlog' ELSE COALESCE(settings -> 'capture' ->> 'mode', 'row') END AS mode FROM rowcast.captures ORDER BY name`,
    ),
    pool.query<{ slot: string; active: boolean; lag: number }>(CAPTURE_SLOT_SQL),
    pool.query(`
      SELECT s.name, s.topic, s.protocol, s.endpoint, s.state, s.state_reason, s.sns_state, s.owner,
             -- A subscription that reads through a cursor: also what its cursor has not passed (rowcast.cursor_backlog).
             (count(*) FILTER (WHERE d.state = 'pending') + coalesce(max(cb.pending), 0))::int AS pending,
             (count(*) FILTER (WHERE d.state = 'in_flight') + coalesce(max(cb.in_flight), 0))::int AS in_flight,
             count(*) FILTER (WHERE d.state = 'dead')::int AS dead,
             (extract(epoch FROM now() - least(min(d.created_at) FILTER (WHERE d.state IN ('pending', 'in_flight')), max(cb.oldest))) * 1000)::bigint AS oldest,
             (SELECT last_error FROM rowcast.deliveries l WHERE l.subscription = s.name AND l.last_error IS NOT NULL AND l.state IN ('pending', 'in_flight', 'dead')
               ORDER BY l.updated_at DESC LIMIT 1) AS last_error
        FROM rowcast.subscriptions s
        LEFT JOIN rowcast.deliveries d ON d.subscription = s.name AND d.state IN ('pending', 'in_flight', 'dead')
        LEFT JOIN LATERAL rowcast.cursor_backlog(s.name) cb ON s.cursor OR EXISTS (SELECT 1 FROM rowcast.cursors c WHERE c.subscription = s.name)
       GROUP BY s.name ORDER BY s.name`),
  ]);
  const subscriptions: SubscriptionStatus[] = subs.rows.map((r) => ({
    name: r.name,
    topic: r.topic,
    protocol: r.protocol,
    // A webhook URL may carry a password (https://user:password@…): never shown.
    endpoint: redactEndpoint(r.endpoint),
    state: r.state,
    stateReason: r.state_reason,
    confirmation: r.sns_state === 'pending_confirmation' ? 'pending' : r.sns_state,
    owner: r.owner,
    pending: r.pending,
    inFlight: r.in_flight,
    dead: r.dead,
    oldestPendingMs: r.oldest === null ? null : Number(r.oldest),
    lastError: r.last_error,
  }));
  const topicRows = await pool.query<{ name: string; owner: 'config' | 'api'; unmatched: string }>(
    'SELECT name, owner, unmatched_messages AS unmatched FROM rowcast.topics ORDER BY name',
  );
  const topics = topicRows.rows.map(({ name, owner, unmatched }) => {
    const own = subscriptions.filter((s) => s.topic === name);
    const sum = (k: 'pending' | 'inFlight' | 'dead') => own.reduce((a, s) => a + s[k], 0);
    return {
      name,
      owner,
      subscriptions: own.length,
      pending: sum('pending'),
      inFlight: sum('inFlight'),
      dead: sum('dead'),
      unmatched: Number(unmatched),
    };
  });
  return {
    events: {
      unrouted: events.rows[0].unrouted,
      oldestUnroutedMs: events.rows[0].oldest === null ? null : Number(events.rows[0].oldest),
    },
    captures: captures.rows.map((r) => ({
      name: r.name,
      table: `${r.schema_name}.${r.table_name}`,
      topic: r.topic,
      mode: r.mode,
    })),
    logicalCapture: slots.rows[0]
      ? { slot: slots.rows[0].slot, streaming: slots.rows[0].active, lagBytes: Math.max(0, slots.rows[0].lag) }
      : null,
    topics,
    subscriptions,
  };
}

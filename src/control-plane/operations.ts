import { ErrorCodes, RowcastError } from '../errors.js';
import type { Pool } from '../store/pool.js';
import { setSubscriptionState } from '../subscriptions/delivery-store.js';

export interface SubscriptionStatus {
  name: string;
  topic: string;
  protocol: string;
  endpoint: string;
  state: 'active' | 'paused' | 'disabled';
  stateReason: string | null;
  pending: number;
  inFlight: number;
  dead: number;
  /** Age of the oldest undelivered (pending or in-flight) delivery, in milliseconds. */
  oldestPendingMs: number | null;
  lastError: string | null;
}

export interface Status {
  events: { unrouted: number; oldestUnroutedMs: number | null };
  captures: { name: string; table: string; topic: string }[];
  topics: { name: string; subscriptions: number; pending: number; inFlight: number; dead: number; unmatched: number }[];
  subscriptions: SubscriptionStatus[];
}

/** Pending, in-flight and dead counts per topic and subscription, and the routing backlog. */
export async function getStatus(pool: Pool): Promise<Status> {
  const [events, captures, subs] = await Promise.all([
    pool.query(`SELECT count(*)::int AS unrouted, (extract(epoch FROM now() - min(captured_at)) * 1000)::bigint AS oldest FROM rowcast.events WHERE routed_at IS NULL`),
    pool.query(`SELECT name, schema_name, table_name, topic FROM rowcast.captures ORDER BY name`),
    pool.query(`
      SELECT s.name, s.topic, s.protocol, s.endpoint, s.state, s.state_reason,
             count(*) FILTER (WHERE d.state = 'pending')::int AS pending,
             count(*) FILTER (WHERE d.state = 'in_flight')::int AS in_flight,
             count(*) FILTER (WHERE d.state = 'dead')::int AS dead,
             (extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.state IN ('pending', 'in_flight'))) * 1000)::bigint AS oldest,
             (SELECT last_error FROM rowcast.deliveries l WHERE l.subscription = s.name AND l.last_error IS NOT NULL AND l.state IN ('pending', 'in_flight', 'dead')
               ORDER BY l.updated_at DESC LIMIT 1) AS last_error
        FROM rowcast.subscriptions s
        LEFT JOIN rowcast.deliveries d ON d.subscription = s.name AND d.state IN ('pending', 'in_flight', 'dead')
       GROUP BY s.name ORDER BY s.name`),
  ]);
  const subscriptions: SubscriptionStatus[] = subs.rows.map((r) => ({
    name: r.name,
    topic: r.topic,
    protocol: r.protocol,
    endpoint: r.endpoint,
    state: r.state,
    stateReason: r.state_reason,
    pending: r.pending,
    inFlight: r.in_flight,
    dead: r.dead,
    oldestPendingMs: r.oldest === null ? null : Number(r.oldest),
    lastError: r.last_error,
  }));
  const topicRows = await pool.query<{ name: string; unmatched: string }>('SELECT name, unmatched_messages AS unmatched FROM rowcast.topics ORDER BY name');
  const topics = topicRows.rows.map(({ name, unmatched }) => {
    const own = subscriptions.filter((s) => s.topic === name);
    const sum = (k: 'pending' | 'inFlight' | 'dead') => own.reduce((a, s) => a + s[k], 0);
    return { name, subscriptions: own.length, pending: sum('pending'), inFlight: sum('inFlight'), dead: sum('dead'), unmatched: Number(unmatched) };
  });
  return {
    events: { unrouted: events.rows[0].unrouted, oldestUnroutedMs: events.rows[0].oldest === null ? null : Number(events.rows[0].oldest) },
    captures: captures.rows.map((r) => ({ name: r.name, table: `${r.schema_name}.${r.table_name}`, topic: r.topic })),
    topics,
    subscriptions,
  };
}

async function assertSubscription(pool: Pool, name: string): Promise<void> {
  const { rowCount } = await pool.query('SELECT 1 FROM rowcast.subscriptions WHERE name = $1', [name]);
  if (!rowCount) {
    const known = (await pool.query<{ name: string }>('SELECT name FROM rowcast.subscriptions ORDER BY name')).rows.map((r) => r.name);
    throw new RowcastError(ErrorCodes.NOT_FOUND, `No subscription "${name}"; known: ${known.join(', ') || 'none (run rowcast apply)'}.`);
  }
}

/**
 * Puts dead deliveries back to pending with a fresh attempt budget, in chunks (progress after each); optionally
 * only one subscription's, and only those that went dead in [since, until).
 * Returns how many were re-queued.
 */
export async function redrive(pool: Pool, options: { subscription?: string; since?: Date; until?: Date; onProgress?: (done: number) => void } = {}): Promise<number> {
  if (options.subscription) await assertSubscription(pool, options.subscription);
  let total = 0;
  // Each chunk re-queues rows that went dead in [since, until); re-queued rows are no longer dead, so chunks advance.
  for (;;) {
    const r = await pool.query(
      `WITH c AS (SELECT id FROM rowcast.deliveries
                   WHERE state = 'dead' AND ($1::text IS NULL OR subscription = $1)
                     AND ($2::timestamptz IS NULL OR updated_at >= $2) AND ($3::timestamptz IS NULL OR updated_at < $3)
                   LIMIT 1000 FOR UPDATE SKIP LOCKED)
       UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), updated_at = now() FROM c WHERE d.id = c.id`,
      [options.subscription ?? null, options.since ?? null, options.until ?? null],
    );
    total += r.rowCount ?? 0;
    if (!r.rowCount) break;
    options.onProgress?.(total);
  }
  // Wakes running processes (they reload and claim).
  if (total) await pool.query(`SELECT pg_notify('rowcast_config', '')`);
  return total;
}

/** Re-activates a paused or disabled (HTTP 410) subscription; its pending deliveries flow again. */
export async function resumeSubscription(pool: Pool, name: string): Promise<boolean> {
  await assertSubscription(pool, name);
  return setSubscriptionState(pool, name, 'active', null);
}

/** Stops deliveries to a subscription; they stay pending until it is resumed. */
export async function pauseSubscription(pool: Pool, name: string, reason = 'paused by an operator'): Promise<boolean> {
  await assertSubscription(pool, name);
  return setSubscriptionState(pool, name, 'paused', reason);
}

/** Signing secrets, for receivers to verify webhook-signature (the secrets rowcast generated included). */
export async function getSubscriptionSecrets(pool: Pool): Promise<{ name: string; secret: string | null }[]> {
  return (await pool.query('SELECT name, secret FROM rowcast.subscriptions ORDER BY name')).rows;
}

export interface InvocationRecord {
  id: string;
  function: string;
  source: string;
  state: 'pending' | 'in_flight' | 'done' | 'failed';
  attempts: number;
  createdAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
  lastError: string | null;
  result: string | null;
  published: string[];
}

/** Invocation history (within the retention window), newest first. */
export async function listInvocations(pool: Pool, filter: { function?: string; state?: InvocationRecord['state']; limit?: number } = {}): Promise<InvocationRecord[]> {
  const { rows } = await pool.query(
    `SELECT id::text, function, source, state, attempts, created_at, finished_at, duration_ms, last_error, result, coalesce(published::text[], '{}') AS published
       FROM rowcast.invocations
      WHERE ($1::text IS NULL OR function = $1) AND ($2::text IS NULL OR state = $2)
      ORDER BY created_at DESC LIMIT $3`,
    [filter.function ?? null, filter.state ?? null, filter.limit ?? 50],
  );
  return rows.map((r) => ({
    id: r.id,
    function: r.function,
    source: r.source,
    state: r.state,
    attempts: r.attempts,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms,
    lastError: r.last_error,
    result: r.result,
    published: r.published,
  }));
}

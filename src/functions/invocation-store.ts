import { type Pool, withTransaction } from '../store/pool.js';
import { publishMessages } from '../topics/fan-out.js';
import type { PublishedMessage, TopicRules } from './thread-protocol.js';

export interface ClaimedInvocation {
  key: string;
  /** The function: the group that concurrency limits apply to. */
  group: string;
  id: string;
  attempt: number;
  payload: string;
  clientContext: unknown;
  trace: string | null;
  /** Milliseconds since the invocation was queued. */
  ageMs: number;
}

/**
 * Claims up to `n` due invocations of one function, leased to `owner`, without ever exceeding `limit` in flight
 * over all processes: claims of one function are serialised by an advisory lock, and each counts the unexpired
 * leases before it takes more.
 */
export async function claimInvocations(pool: Pool, fn: string, n: number, limit: number, leaseMs: number, owner: string): Promise<ClaimedInvocation[]> {
  return withTransaction(pool, async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('rowcast.function:' || $1, 0))`, [fn]);
    const { rows } = await client.query(
      `WITH running AS (
         SELECT count(*)::int AS n FROM rowcast.invocations WHERE function = $1 AND state = 'in_flight' AND available_at > now()
       ), due AS (
         SELECT i.id FROM rowcast.invocations i
          WHERE i.function = $1 AND i.state IN ('pending', 'in_flight') AND i.available_at <= now()
          ORDER BY i.available_at, i.created_at
          LIMIT greatest(0, least($2::int, $3::int - (SELECT n FROM running)))
          FOR UPDATE SKIP LOCKED
       )
       UPDATE rowcast.invocations i
          SET state = 'in_flight', attempts = i.attempts + 1, available_at = now() + $4 * interval '1 millisecond',
              lease_owner = $5, started_at = coalesce(i.started_at, now())
         FROM due WHERE i.id = due.id
       RETURNING i.id::text, i.attempts, i.payload, i.client_context, i.trace,
                 (extract(epoch FROM now() - i.created_at) * 1000)::bigint AS age_ms`,
      [fn, n, limit, leaseMs, owner],
    );
    return rows.map((r) => ({ key: r.id, group: fn, id: r.id, attempt: r.attempts, payload: r.payload, clientContext: r.client_context, trace: r.trace, ageMs: Number(r.age_ms) }));
  });
}

export interface InvocationResult {
  id: string;
  attempt: number;
  durationMs: number;
  state: 'done' | 'pending' | 'failed';
  availableAt?: Date;
  error?: string;
  result?: string | null;
  /** done: what the handler published; failed: the on-failure record, if the function has a destination. */
  messages: PublishedMessage[];
  trace: string | null;
}

/**
 * Records an attempt's outcome and writes the messages it published in the same transaction, so that a
 * successful invocation publishes exactly once and a failed one publishes nothing. Returns the number of
 * deliveries created, or null when the lease was lost (another process took the invocation over): then nothing
 * is written.
 */
export async function completeInvocation(pool: Pool, r: InvocationResult): Promise<number | null> {
  try {
    return await withTransaction(pool, async (client) => {
      const res = await client.query(
        `UPDATE rowcast.invocations
            SET state = $3, available_at = coalesce($4, available_at), duration_ms = $5, last_error = coalesce($6, last_error),
                result = $7, published = $8::uuid[], lease_owner = NULL,
                finished_at = CASE WHEN $3 IN ('done', 'failed') THEN now() END
          WHERE id = $1 AND attempts = $2 AND state = 'in_flight'`,
        [r.id, r.attempt, r.state, r.availableAt ?? null, r.durationMs, r.error ?? null, r.result ?? null, r.state === 'done' ? r.messages.map((m) => m.id) : null],
      );
      if (!res.rowCount) throw new LeaseLost();
      return publishMessages(client, r.messages, r.trace);
    });
  } catch (err) {
    if (err instanceof LeaseLost) return null;
    throw err;
  }
}

/** Rolls the completion back: the invocation belongs to another process now. */
class LeaseLost extends Error {}

/** Hands invocations back at shutdown: due again at once, for this or another process. */
export async function releaseInvocations(pool: Pool, items: { id: string; attempt: number }[]): Promise<void> {
  if (!items.length) return;
  await pool.query(
    `UPDATE rowcast.invocations i SET state = 'pending', available_at = now(), lease_owner = NULL
       FROM unnest($1::uuid[], $2::int[]) AS r(id, attempt)
      WHERE i.id = r.id AND i.attempts = r.attempt AND i.state = 'in_flight'`,
    [items.map((i) => i.id), items.map((i) => i.attempt)],
  );
}

export async function listTopics(pool: Pool): Promise<Record<string, TopicRules>> {
  const { rows } = await pool.query<{ name: string; max_message_size: number; large_messages: TopicRules['largeMessages'] }>('SELECT name, max_message_size, large_messages FROM rowcast.topics');
  return Object.fromEntries(rows.map((r) => [r.name, { maxMessageSize: r.max_message_size, largeMessages: r.large_messages }]));
}

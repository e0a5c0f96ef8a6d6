import { CAPTURE_SLOT_SQL } from '../capture/logical-ddl.js';
import { parseDuration } from '../config/duration.js';
import { WEBHOOK_SECRET } from '../config/schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import { redactEndpoint } from '../observability/redact.js';
import { type Pool, withTransaction } from '../store/pool.js';
import { historyEventSql } from '../model/attempt-log.js';
import { setSubscriptionState } from '../delivery/delivery-store.js';
import { resetEndpointHealth } from '../delivery/endpoint-health.js';
import {
  DEFAULT_SECRET_ROTATION_OVERLAP,
  generateSecret,
  MAX_SECRET_ROTATION_OVERLAP,
  ROTATE_SECRET_SQL,
} from '../delivery/sinks/http/webhook-secret.js';

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
      `SELECT count(*)::int AS unrouted, (extract(epoch FROM now() - min(captured_at)) * 1000)::bigint AS oldest FROM rowcast.events WHERE routed_at IS NULL`,
    ),
    pool.query(
      `SELECT name, schema_name, table_name, topic, CASE WHEN settings ->> 'kind' = 'postgres' THEN 'pgoutput' WHEN settings -> 'capture' ? 'source' THEN 'binlog' ELSE COALESCE(settings -> 'capture' ->> 'mode', 'row') END AS mode FROM rowcast.captures ORDER BY name`,
    ),
    pool.query<{ slot: string; active: boolean; lag: number }>(CAPTURE_SLOT_SQL),
    pool.query(`
      SELECT s.name, s.topic, s.protocol, s.endpoint, s.state, s.state_reason, s.sns_state, s.owner,
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

async function assertSubscription(pool: Pool, name: string): Promise<void> {
  const { rowCount } = await pool.query('SELECT 1 FROM rowcast.subscriptions WHERE name = $1', [name]);
  if (!rowCount) {
    const known = (await pool.query<{ name: string }>('SELECT name FROM rowcast.subscriptions ORDER BY name')).rows.map(
      (r) => r.name,
    );
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No subscription "${name}"; known: ${known.join(', ') || 'none (run rowcast apply)'}.`,
    );
  }
}

/**
 * Puts dead deliveries back to pending with a fresh attempt budget, in chunks (progress after each); optionally
 * only one subscription's, and only those that went dead in [since, until).
 * Returns how many were re-queued.
 */
export async function redrive(
  pool: Pool,
  options: { subscription?: string; since?: Date; until?: Date; onProgress?: (done: number) => void } = {},
): Promise<number> {
  if (options.subscription) await assertSubscription(pool, options.subscription);
  let total = 0;
  // Each chunk re-queues rows that went dead in [since, until); re-queued rows are no longer dead, so chunks advance.
  for (;;) {
    const r = await pool.query(
      `WITH c AS (SELECT id FROM rowcast.deliveries
                   WHERE state = 'dead' AND ($1::text IS NULL OR subscription = $1)
                     AND ($2::timestamptz IS NULL OR updated_at >= $2) AND ($3::timestamptz IS NULL OR updated_at < $3)
                     -- Not to a subscription waiting for SNS's confirmation or unsubscribed (it receives nothing), but
                     -- its handshake messages (topics 'sns:…'), which are how it gets confirmed.
                     AND ((SELECT s.sns_state FROM rowcast.subscriptions s WHERE s.name = rowcast.deliveries.subscription) = 'confirmed'
                          OR (SELECT m.topic FROM rowcast.messages m WHERE m.id = rowcast.deliveries.message_id) LIKE 'sns:%')
                   LIMIT 1000 FOR UPDATE SKIP LOCKED)
       UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), attempt_log = ${historyEventSql('d', 'redriven')}
         FROM c WHERE d.id = c.id`,
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

/** Re-activates a paused or disabled (HTTP 410, disableAfter) subscription with a fresh health; its pending deliveries flow again. */
export async function resumeSubscription(pool: Pool, name: string): Promise<boolean> {
  await assertSubscription(pool, name);
  // Failures before the resume no longer count towards disableAfter.
  await resetEndpointHealth(pool, name);
  return setSubscriptionState(pool, name, 'active', null);
}

/** Stops deliveries to a subscription; they stay pending until it is resumed. */
export async function pauseSubscription(pool: Pool, name: string, reason = 'paused by an operator'): Promise<boolean> {
  await assertSubscription(pool, name);
  return setSubscriptionState(pool, name, 'paused', reason);
}

/**
 * Signing secrets, for receivers to verify webhook-signature (the secrets rowcast generated included), and until
 * when a rotated-out previous secret still signs too (null: none).
 */
export async function getSubscriptionSecrets(
  pool: Pool,
): Promise<{ name: string; secret: string | null; previousSecretExpiresAt: Date | null }[]> {
  return (
    await pool.query(
      `SELECT name, secret, CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS "previousSecretExpiresAt"
         FROM rowcast.subscriptions ORDER BY name`,
    )
  ).rows;
}

export interface RotatedSecret {
  /** The new signing secret: shown once; receivers verify with it from now on. */
  secret: string;
  /** Until when requests also carry a signature with the previous secret; null: the previous one ended now. */
  previousSecretExpiresAt: Date | null;
}

/**
 * Rotates a webhook subscription's signing secret. The current secret stays valid for `overlap` (milliseconds
 * or a duration such as "24h"; default 24h; 0 ends it at once, e.g. after a leak; at most 30 days): meanwhile
 * every request carries two signatures, so receivers holding either secret accept it. `secret` defaults to a
 * freshly generated one. Running processes pick it up at once (NOTIFY rowcast_config). Refused for a secret the
 * config declares, since the next `rowcast apply` would undo it: change the config instead.
 */
export async function rotateSecret(
  pool: Pool,
  subscription: string,
  options: { overlap?: number | string; secret?: string } = {},
): Promise<RotatedSecret> {
  const given = options.overlap ?? DEFAULT_SECRET_ROTATION_OVERLAP;
  const overlap = typeof given === 'string' && given.trim() === '0' ? 0 : parseDuration(given);
  if (overlap === undefined || overlap > MAX_SECRET_ROTATION_OVERLAP) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `overlap ${JSON.stringify(options.overlap)} is not a duration of at most 30 days; write e.g. "24h", "7d", or 0 to end the previous secret now.`,
    );
  }
  const secret = options.secret ?? generateSecret();
  if (!WEBHOOK_SECRET.test(secret)) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      'the new secret is not a Standard Webhooks secret ("whsec_" + base64 of 24–64 random bytes); omit it and rowcast generates one.',
    );
  }
  await assertSubscription(pool, subscription);
  const expiresAt = await withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ protocol: string; secret_from_config: boolean }>(
      'SELECT protocol, secret_from_config FROM rowcast.subscriptions WHERE name = $1 FOR UPDATE',
      [subscription],
    );
    const row = rows[0];
    if (!row) throw new RowcastError(ErrorCodes.NOT_FOUND, `No subscription "${subscription}" (it was just removed).`);
    if (row.protocol !== 'http' && row.protocol !== 'https') {
      throw new RowcastError(
        ErrorCodes.CONFIG_INVALID,
        `subscription ${subscription} delivers over ${row.protocol}; only webhook (http/https) subscriptions have a signing secret.`,
      );
    }
    if (row.secret_from_config) {
      throw new RowcastError(
        ErrorCodes.CONFIG_INVALID,
        `subscription ${subscription}'s secret is declared in the config (subscriptions.${subscription}.secret), so the next apply would undo a rotation here: change the secret there and run rowcast apply, which keeps the old one valid for secretRotationOverlap.`,
      );
    }
    const updated = await client.query<{ previous_secret_expires_at: Date | null }>(ROTATE_SECRET_SQL, [
      subscription,
      secret,
      overlap,
    ]);
    await client.query(`SELECT pg_notify('rowcast_config', '')`);
    return updated.rows[0]!.previous_secret_expires_at;
  });
  return { secret, previousSecretExpiresAt: expiresAt };
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
export async function listInvocations(
  pool: Pool,
  filter: { function?: string; state?: InvocationRecord['state']; limit?: number } = {},
): Promise<InvocationRecord[]> {
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

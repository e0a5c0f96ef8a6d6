import { type Pool, type PoolClient, withTransaction } from '../store/pool.js';
import { leaseFence, prepared } from '../store/sql.js';
import { type NewMessage, publishMessages } from '../routing/fan-out.js';
import { type AttemptExchange, appendToAttemptLog, attemptLogEntry } from '../model/attempt-log.js';
import { parseStoredSettings } from '../model/stored-settings.js';
import type { Subscription } from '../model/sink.js';
import type { FilterPolicyScope } from '../model/filter-policy/filter-policy.js';
import { type ClaimedDelivery, toClaimedDelivery } from '../store/deliveries.js';

export { type ClaimedDelivery, toClaimedDelivery } from '../store/deliveries.js';

/**
 * Claims up to `n` due deliveries per subscription and leases them to `owner` for leaseMs. A delivery is due when
 * it is pending and its time has come, or when it is in flight and its lease has expired (its process died).
 * `attempts` is bumped on claim, and each claim gets a fresh `lease` token (see leaseFence).
 */
export const CLAIM_SQL = `
-- Only active subscriptions: a pause (or a 410's disable) holds from its commit, not from the worker's reload.
WITH wanted AS (SELECT w.* FROM unnest($1::text[], $2::int[]) AS w(subscription, n)
                  JOIN rowcast.subscriptions s ON s.name = w.subscription AND s.state = 'active'),
claimed AS (
  SELECT d.id FROM wanted w CROSS JOIN LATERAL (
    SELECT id FROM rowcast.deliveries d
     WHERE d.subscription = w.subscription AND d.state IN ('pending', 'in_flight') AND d.available_at <= now()
       -- FIFO: only the first undelivered delivery of its group; a dead one holds the group back only on topics
       -- that say so (onDeadMessage: block-group). Two lookups, each on its own partial index (one OR-ed lookup
       -- could only scan the table).
       AND (d.group_key IS NULL OR (
             -- Switched back from a cursor: its messages before the switch may still become rows (held or failed)
             -- while it drains, earlier in their groups than rows written since; the groups wait until it is gone.
             NOT EXISTS (
               SELECT 1 FROM rowcast.cursors c JOIN rowcast.subscriptions s ON s.name = c.subscription
                WHERE c.subscription = d.subscription AND NOT s.cursor)
             AND NOT EXISTS (
               SELECT 1 FROM rowcast.deliveries e
                WHERE e.subscription = d.subscription AND e.group_key = d.group_key AND e.seq < d.seq AND e.state IN ('pending', 'in_flight'))
             AND NOT (
               (SELECT t.fifo_dead_blocks FROM rowcast.topics t JOIN rowcast.subscriptions s ON s.topic = t.name WHERE s.name = d.subscription)
               AND EXISTS (
                 SELECT 1 FROM rowcast.deliveries e
                  WHERE e.subscription = d.subscription AND e.state = 'dead' AND e.group_key = d.group_key AND e.seq < d.seq))))
     ORDER BY d.available_at, d.id
     LIMIT w.n FOR UPDATE SKIP LOCKED) d
)
-- "= ANY (ARRAY(…))" keeps the update on the primary key: joined to the CTE, the planner (which cannot know the
-- claim's size) hashes the whole table instead.
UPDATE rowcast.deliveries d
   SET state = 'in_flight', attempts = d.attempts + 1, available_at = now() + $3 * interval '1 millisecond', lease_owner = $4, lease = gen_random_uuid(),
       updated_at = now()
  FROM rowcast.messages m LEFT JOIN rowcast.topics t ON t.name = m.topic
 WHERE d.id = ANY (ARRAY(SELECT id FROM claimed)) AND m.id = d.message_id
RETURNING d.id::text AS delivery_id, d.subscription, d.attempts AS attempt, d.lease::text AS lease, m.id::text AS message_id, m.topic, m.subject,
          -- MessageStructure 'json' (SNS API): the message for the subscription's protocol, else the default one.
          CASE WHEN m.protocol_bodies IS NULL THEN m.body
               ELSE coalesce(m.protocol_bodies ->> (SELECT s.protocol FROM rowcast.subscriptions s WHERE s.name = d.subscription), m.body) END AS body,
          m.content_type, m.attributes, m.attribute_types, to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at, m.trace,
          coalesce(t.max_message_size, 262144) AS max_message_size, coalesce(t.large_messages, 'reject') AS large_messages,
          coalesce(t.claim_check_ttl_ms, 86400000) AS claim_check_ttl_ms`;

const claimStatement = prepared('claim_deliveries', CLAIM_SQL);

export async function claimDeliveries(
  db: Pool | PoolClient,
  wanted: Map<string, number>,
  leaseMs: number,
  owner: string,
): Promise<ClaimedDelivery[]> {
  if (!wanted.size) return [];
  const { rows } = await db.query(claimStatement([[...wanted.keys()], [...wanted.values()], leaseMs, owner]));
  return rows.map(toClaimedDelivery);
}

export interface DeliveryResult {
  deliveryId: string;
  /** The attempt that produced this result, and its lease: a result whose lease was lost (taken over) is ignored. */
  attempt: number;
  lease: string;
  state: 'done' | 'pending' | 'dead';
  /** For pending: when the next attempt may start. */
  availableAt?: Date;
  status?: number;
  error?: string;
  /** For dead: the message for the subscription's dead-letter topic, published with the result. */
  deadLetter?: NewMessage;
  /** How long the attempt took (its attempt-log entry). */
  durationMs?: number;
  /** What an HTTP attempt sent and got back (its attempt-log entry). */
  exchange?: AttemptExchange;
}

/**
 * Records many attempt results in one transaction, and publishes the dead letters of those that went dead.
 * Results whose lease was lost (taken over) are ignored, their dead letters too. Returns how many were recorded.
 */
export async function completeDeliveries(pool: Pool, results: DeliveryResult[]): Promise<number> {
  if (!results.length) return 0;
  if (!results.some((r) => r.deadLetter)) return recordResults(pool, results).then((ids) => ids.length);
  return withTransaction(pool, (client) => recordDeliveryResults(client, results));
}

/** completeDeliveries inside the caller's transaction: the results, and the dead letters of those recorded dead. */
export async function recordDeliveryResults(client: PoolClient, results: DeliveryResult[]): Promise<number> {
  if (!results.length) return 0;
  const recorded = new Set(await recordResults(client, results));
  const letters = results.filter((r) => r.deadLetter && recorded.has(r.deliveryId)).map((r) => r.deadLetter!);
  if (letters.length) await publishMessages(client, letters, null);
  return recorded.size;
}

const recordStatement = prepared(
  'record_deliveries',
  `UPDATE rowcast.deliveries d
        SET state = r.state, available_at = COALESCE(r.available_at, d.available_at), last_status = r.status,
            last_error = CASE WHEN r.state = 'done' THEN d.last_error ELSE r.error END,
            delivered_at = CASE WHEN r.state = 'done' THEN now() END, lease_owner = NULL, lease = NULL, updated_at = now(),
            -- The attempt log (attempt-log.ts): the attempt's entry, built by the worker with its request and response
            -- when it has them (HTTP), so that a first entry is stored as passed, with no jsonb operation. An attempt
            -- without them is logged only once one failed: a non-HTTP delivery done at once keeps NULL.
            attempt_log = CASE WHEN d.attempt_log IS NULL THEN CASE WHEN r.keep THEN r.entry END
              ELSE ${appendToAttemptLog('d', 'r.entry')} END
       FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::int[], $6::text[], $7::uuid[], $8::jsonb[], $9::boolean[])
            AS r(id, attempt, state, available_at, status, error, lease, entry, keep)
      WHERE d.id = r.id AND ${leaseFence('d')}
      RETURNING d.id::text`,
);

async function recordResults(db: Pool | PoolClient, results: DeliveryResult[]): Promise<string[]> {
  const res = await db.query(
    recordStatement([
      results.map((r) => r.deliveryId),
      results.map((r) => r.attempt),
      results.map((r) => r.state),
      results.map((r) => r.availableAt ?? null),
      results.map((r) => r.status ?? null),
      results.map((r) => r.error ?? null),
      results.map((r) => r.lease),
      results.map(attemptLogEntry),
      results.map((r) => r.state !== 'done' || r.exchange !== undefined),
    ]),
  );
  return res.rows.map((r) => r.id as string);
}

/**
 * Gives work back (graceful shutdown, or claimed ahead and not started in time): due again at once. An attempt
 * that started still counts; one that never started does not (its claim's bump of `attempts` is undone).
 */
export async function releaseDeliveries(
  pool: Pool,
  leases: { deliveryId: string; attempt: number; lease: string }[],
  started = true,
): Promise<void> {
  if (!leases.length) return;
  await pool.query(
    `UPDATE rowcast.deliveries d SET state = 'pending', available_at = now(), lease_owner = NULL, lease = NULL, updated_at = now(),
            attempts = d.attempts - CASE WHEN $4::boolean THEN 1 ELSE 0 END
       FROM unnest($1::bigint[], $2::int[], $3::uuid[]) AS r(id, attempt, lease)
      WHERE d.id = r.id AND ${leaseFence('d')}`,
    [leases.map((l) => l.deliveryId), leases.map((l) => l.attempt), leases.map((l) => l.lease), !started],
  );
}

export async function setSubscriptionState(
  pool: Pool,
  name: string,
  state: Subscription['state'],
  reason: string | null,
): Promise<boolean> {
  const res = await pool.query(
    `UPDATE rowcast.subscriptions SET state = $2, state_reason = $3, state_changed_at = now() WHERE name = $1 AND state IS DISTINCT FROM $2`,
    [name, state, reason],
  );
  if (res.rowCount) await pool.query(`SELECT pg_notify('rowcast_config', '')`);
  return (res.rowCount ?? 0) > 0;
}

/**
 * The subscriptions as a delivering process needs them. A row whose settings do not validate (parseStoredSettings)
 * is left out, and reported through onInvalid: the others keep working.
 */
export async function loadSubscriptions(
  pool: Pool,
  onInvalid: (name: string, error: string) => void = () => {},
): Promise<Subscription[]> {
  const { rows } = await pool.query<{
    name: string;
    topic: string;
    protocol: string;
    endpoint: string;
    settings: unknown;
    secret: string | null;
    state: Subscription['state'];
    dead_letter_topic: string | null;
    previous_secret: string | null;
    previous_secret_expires_at: Date | null;
    signature_version: 1 | 2 | null;
    reads_log: boolean;
    filter_policy: object | null;
    filter_scope: FilterPolicyScope;
  }>(
    `SELECT s.name, s.topic, s.protocol, s.endpoint, s.settings, s.secret, s.state, s.dead_letter_topic, s.previous_secret, s.previous_secret_expires_at, t.signature_version,
            s.cursor OR EXISTS (SELECT 1 FROM rowcast.cursors c WHERE c.subscription = s.name) AS reads_log, s.filter_policy, s.filter_scope
       FROM rowcast.subscriptions s LEFT JOIN rowcast.topics t ON t.name = s.topic ORDER BY s.name`,
  );
  return rows.flatMap(
    ({
      dead_letter_topic,
      previous_secret,
      previous_secret_expires_at,
      signature_version,
      settings: stored,
      reads_log,
      filter_policy,
      filter_scope,
      ...r
    }) => {
      const parsed = parseStoredSettings(r.name, stored);
      if (!parsed.ok) {
        onInvalid(r.name, parsed.error);
        return [];
      }
      return [
        {
          ...subscriptionOf(
            { ...r, settings: parsed.settings },
            dead_letter_topic,
            previous_secret,
            previous_secret_expires_at,
            signature_version,
          ),
          readsLog: reads_log,
          filter: filter_policy ? { policy: filter_policy, scope: filter_scope } : null,
        },
      ];
    },
  );
}

function subscriptionOf(
  r: Omit<Subscription, 'deadLetterTopic' | 'signatureVersion' | 'previousSecret' | 'secretHeaders'>,
  dead_letter_topic: string | null,
  previous_secret: string | null,
  previous_secret_expires_at: Date | null,
  signature_version: 1 | 2 | null,
): Subscription {
  return {
    ...r,
    deadLetterTopic: dead_letter_topic,
    signatureVersion: signature_version ?? 1,
    // The sink compares the expiry at each send, so the old secret ends on time without a reload.
    previousSecret:
      previous_secret && previous_secret_expires_at
        ? { secret: previous_secret, expiresAt: previous_secret_expires_at }
        : null,
    settings: { ...r.settings, headers: expandHeaders(r.settings.headers ?? {}) },
    secretHeaders: new Set(
      Object.entries(r.settings.headers ?? {})
        .filter(([, v]) => ENV_REFERENCE.test(v))
        .map(([k]) => k.toLowerCase()),
    ),
  };
}

const ENV_REFERENCE = /\$\{[A-Za-z_][A-Za-z0-9_]*\}/;

/** Header values may reference environment variables as ${NAME}, so API keys stay out of the config and the database. */
function expandHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [
      k,
      v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => process.env[name] ?? ''),
    ]),
  );
}

import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { functionRatesOf, type Rates, subscriptionRatesOf } from '../../observability/activity.js';
import { redactEndpoint } from '../../observability/redact.js';
import type { Pool } from '../../store/pool.js';
import { activityRates } from './activity-stats.js';
import { getStatus, type Status, type SubscriptionStatus } from './status.js';

/*
 * What is declared — captures, functions, topics, subscriptions — each with its backlog and rates. Rates sum
 * rowcast.activity, which every process adds its counts to every few seconds (src/observability/activity.ts).
 */

/** The NOT_FOUND error for a declared thing, naming those that exist. */
export async function notDeclared(
  pool: Pool,
  kind: 'capture' | 'function' | 'topic' | 'subscription',
  name: string,
): Promise<RowcastError> {
  const table = { capture: 'captures', function: 'functions', topic: 'topics', subscription: 'subscriptions' }[kind];
  const known = (
    await pool.query<{ name: string }>(`SELECT name FROM rowcast.${table} ORDER BY name LIMIT 50`)
  ).rows.map((r) => r.name);
  return new RowcastError(
    ErrorCodes.NOT_FOUND,
    `No ${kind} "${name}"; known: ${known.join(', ') || 'none'} (declare it under "${table}" in the config and run rowcast apply).`,
  );
}

export interface CaptureInfo {
  name: string;
  table: string;
  operations: string[];
  payload: string;
  target: { kind: 'topic' | 'function'; name: string };
  subject: string | null;
  eventsPerMinute: number;
  /** Its last backfill (backfill.ts): running, done or failed, rows sent of the rows that matched at its start. */
  backfill: { state: string; rowsSent: number; rowsTotal: number | null; error: string | null } | null;
}

export async function listCaptures(pool: Pool): Promise<CaptureInfo[]> {
  const { rows } = await pool.query(
    `SELECT c.name, c.schema_name, c.table_name, c.topic, c.function, c.subject, c.settings -> 'capture' AS capture, coalesce(r.n, 0)::int AS per_minute,
            b.state AS backfill_state, b.rows_sent::float8 AS backfill_sent, b.rows_total::float8 AS backfill_total, b.error AS backfill_error
       FROM rowcast.captures c
       LEFT JOIN (SELECT capture, count(*) AS n FROM rowcast.events WHERE captured_at > now() - interval '1 minute' GROUP BY capture) r ON r.capture = c.name
       LEFT JOIN rowcast.backfills b ON b.capture = c.name
      ORDER BY c.name`,
  );
  return rows.map((r) => ({
    name: r.name,
    table: `${r.schema_name}.${r.table_name}`,
    operations: r.capture?.operations ?? [],
    payload: r.capture?.payload ?? 'row',
    target: r.topic !== null ? { kind: 'topic', name: r.topic } : { kind: 'function', name: r.function },
    subject: r.subject,
    eventsPerMinute: r.per_minute,
    backfill:
      r.backfill_state === null
        ? null
        : { state: r.backfill_state, rowsSent: r.backfill_sent, rowsTotal: r.backfill_total, error: r.backfill_error },
  }));
}

export interface FunctionInfo {
  name: string;
  state: 'active' | 'paused';
  stateReason: string | null;
  /** Lambda-style settings (attempts, backoff, timeout, concurrency, on-failure topic); the handler path stays in the config. */
  settings: Record<string, unknown>;
  pending: number;
  running: number;
  /** Invocations that failed for good in the last hour. */
  dead: number;
  oldestPendingAgeSeconds: number | null;
  invocationsPerMinute: number;
  errorsPerMinute: number;
}

export async function listFunctions(
  pool: Pool,
  name?: string,
  knownRates?: Promise<Map<string, Rates>>,
): Promise<FunctionInfo[]> {
  const [rates, { rows }] = await Promise.all([
    knownRates ?? activityRates(pool),
    pool.query(
      `SELECT f.name, f.state, f.state_reason, f.settings,
            coalesce(q.pending, 0)::int AS pending, coalesce(q.running, 0)::int AS running, coalesce(x.dead, 0)::int AS dead, q.oldest
       FROM rowcast.functions f
       LEFT JOIN (SELECT function, count(*) FILTER (WHERE state = 'pending') AS pending, count(*) FILTER (WHERE state = 'in_flight') AS running,
                         extract(epoch FROM now() - min(created_at)) AS oldest
                    FROM rowcast.invocations WHERE state IN ('pending', 'in_flight') GROUP BY function) q ON q.function = f.name
       LEFT JOIN (SELECT function, count(*) AS dead FROM rowcast.invocations
                   WHERE created_at > now() - interval '1 hour' AND state = 'failed' GROUP BY function) x ON x.function = f.name
      WHERE $1::text IS NULL OR f.name = $1
      ORDER BY f.name`,
      [name ?? null],
    ),
  ]);
  return rows.map((r) => ({
    name: r.name,
    state: r.state,
    stateReason: r.state_reason,
    settings: r.settings,
    pending: r.pending,
    running: r.running,
    dead: r.dead,
    oldestPendingAgeSeconds: r.oldest === null ? null : Math.round(Number(r.oldest)),
    ...functionRatesOf(rates, r.name),
  }));
}

export interface TopicInfo {
  name: string;
  /** Who made it: 'config' (rowcast apply) or 'api' (the SNS API; apply leaves it alone). */
  owner: 'config' | 'api';
  description: string | null;
  fifo: boolean;
  maxMessageSize: number;
  largeMessages: string;
  subscriptions: number;
  pending: number;
  inFlight: number;
  dead: number;
  /** Messages no subscription took (no subscription, or every filter policy said no), since the topic exists. */
  unmatched: number;
  messagesPerMinute: number;
}

export async function listTopics(pool: Pool, known?: Promise<Status>): Promise<TopicInfo[]> {
  const [status, { rows }] = await Promise.all([
    known ?? getStatus(pool),
    pool.query(
      `SELECT t.name, t.owner, t.description, t.fifo, t.max_message_size, t.large_messages, coalesce(r.n, 0)::int AS per_minute
         FROM rowcast.topics t
         LEFT JOIN (SELECT topic, sum(n) AS n
                      FROM (SELECT topic, 1 AS n FROM rowcast.messages WHERE created_at > now() - interval '1 minute' AND NOT from_segment
                            UNION ALL
                            SELECT topic, cardinality(seqs) FROM rowcast.log_segments WHERE created_at > now() - interval '1 minute') x
                     GROUP BY topic) r ON r.topic = t.name
        ORDER BY t.name`,
    ),
  ]);
  const counts = new Map(status.topics.map((t) => [t.name, t]));
  return rows.map((r) => {
    const c = counts.get(r.name);
    return {
      name: r.name,
      owner: r.owner,
      description: r.description,
      fifo: r.fifo,
      maxMessageSize: r.max_message_size,
      largeMessages: r.large_messages,
      subscriptions: c?.subscriptions ?? 0,
      pending: c?.pending ?? 0,
      inFlight: c?.inFlight ?? 0,
      dead: c?.dead ?? 0,
      unmatched: c?.unmatched ?? 0,
      messagesPerMinute: r.per_minute,
    };
  });
}

/** A subscription's status (its age in seconds, as everywhere in the API) with its rates and settings. */
export interface SubscriptionInfo extends Omit<SubscriptionStatus, 'oldestPendingMs'> {
  /** Who made it: 'config' (rowcast apply) or 'api' (the SNS API; apply leaves it alone). */
  owner: 'config' | 'api';
  oldestPendingAgeSeconds: number | null;
  deliveredPerMinute: number;
  errorsPerMinute: number;
  format: string;
  filterPolicy: object | null;
  filterPolicyScope: string;
  deliveryPolicy: Record<string, unknown>;
  maxConcurrency: number;
  deadLetterTopic: string | null;
  /** Names of extra request headers (their values may be credentials, so they are never shown). */
  headers: string[];
  /** Whether requests are signed (the secret itself is never shown). */
  signed: boolean;
  /** Endpoint health: since when every attempt fails (null: healthy), and deliveries dead since the last success. */
  failingSince: Date | null;
  deadInRow: number;
  /** When it is disabled for failing (milliseconds; null: never). */
  disableAfter: { failingFor: number | null; deadDeliveries: number | null } | null;
}

export async function listSubscriptions(
  pool: Pool,
  name?: string,
  known?: Promise<Status>,
  knownRates?: Promise<Map<string, Rates>>,
): Promise<SubscriptionInfo[]> {
  const [status, rates, { rows }] = await Promise.all([
    known ?? getStatus(pool),
    knownRates ?? activityRates(pool),
    pool.query(
      // state and state_reason are read here, beside the health they follow from (a disable commits just after
      // its dead_in_row), not from getStatus's query: each query of Promise.all has a snapshot of its own.
      `SELECT name, owner, settings, filter_policy, filter_scope, dead_letter_topic, secret IS NOT NULL AS signed, failing_since, dead_in_row,
              state, state_reason
         FROM rowcast.subscriptions WHERE $1::text IS NULL OR name = $1 ORDER BY name`,
      [name ?? null],
    ),
  ]);
  const byName = new Map(status.subscriptions.map((s) => [s.name, s]));
  return rows.flatMap((r) => {
    const s = byName.get(r.name);
    if (!s) return [];
    return [
      {
        name: s.name,
        owner: r.owner,
        topic: s.topic,
        protocol: s.protocol,
        endpoint: redactEndpoint(s.endpoint),
        state: r.state,
        stateReason: r.state_reason,
        confirmation: s.confirmation,
        pending: s.pending,
        inFlight: s.inFlight,
        dead: s.dead,
        oldestPendingAgeSeconds: s.oldestPendingMs === null ? null : Math.round(s.oldestPendingMs / 1000),
        lastError: s.lastError,
        ...subscriptionRatesOf(rates, s.name),
        format: r.settings.format ?? 'envelope',
        filterPolicy: r.filter_policy,
        filterPolicyScope: r.filter_scope,
        deliveryPolicy: r.settings.deliveryPolicy ?? {},
        maxConcurrency: r.settings.maxConcurrency ?? null,
        deadLetterTopic: r.dead_letter_topic,
        headers: Object.keys(r.settings.headers ?? {}),
        signed: r.signed,
        failingSince: r.failing_since,
        deadInRow: r.dead_in_row,
        disableAfter: r.settings.disableAfter ?? null,
      },
    ];
  });
}

export async function getSubscription(pool: Pool, name: string): Promise<SubscriptionInfo> {
  const [sub] = await listSubscriptions(pool, name);
  if (!sub) throw await notDeclared(pool, 'subscription', name);
  return sub;
}

export async function getFunction(pool: Pool, name: string): Promise<FunctionInfo> {
  const [fn] = await listFunctions(pool, name);
  if (!fn) throw await notDeclared(pool, 'function', name);
  return fn;
}

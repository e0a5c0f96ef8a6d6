import { ErrorCodes, RowcastError } from '../model/errors.js';
import {
  activity,
  type ActivityRow,
  BUCKET_MS,
  functionRatesOf,
  LATENCY_BOUNDS,
  minuteStart,
  type Rates,
  ratesOf,
  seriesOf,
  type StatsPoint,
  stepsOf,
  subscriptionRatesOf,
} from '../observability/activity.js';
import { redactEndpoint } from '../observability/redact.js';
import type { Pool } from '../store/pool.js';
import { getStatus, type Status, type SubscriptionStatus } from './operations.js';
import type { AttemptLogEntry } from '../model/attempt-log.js';
import type { SqlRow } from '../store/sql.js';

export type { AttemptLogEntry };

/*
 * Read models of the admin API (and of anyone using the library): what is declared, what flows, what is stuck.
 * Every query is bounded: lists are paginated by id (keyset, newest first), counts come from the partial
 * indexes of pending and dead work, and time windows use the BRIN indexes on creation times. Rates of
 * deliveries and invocations and the stats series sum rowcast.activity, which every process adds its counts to
 * every few seconds (src/observability/activity.ts), plus what this process has not written yet.
 */

/** Lists: `limit` (1–500, default 50) and an opaque `cursor` from the previous page's nextCursor. */
export interface PageRequest {
  limit?: number;
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

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

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

/** A cursor is the keyset of the last item, base64url-encoded so that clients treat it as opaque. */
function encodeCursor(kind: string, key: string): string {
  return Buffer.from(`${kind}:${key}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | undefined): string | null {
  if (cursor === undefined || cursor === '') return null;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const [k, key] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
  if (k !== kind || (!/^\d{1,19}$/.test(key) && !/^[0-9TZ:.+-]{10,40}\|[0-9a-f-]{36}$/.test(key))) {
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `cursor "${cursor}" is not a cursor of this list; pass the nextCursor of the previous page, or none for the first page.`,
    );
  }
  return key;
}

export function limitOf(page: PageRequest): number {
  const limit = page.limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `limit must be a whole number from 1 to ${MAX_PAGE}, not ${limit}.`,
    );
  }
  return limit;
}

/** Takes limit + 1 rows: the extra one only says whether there is a next page. */
export function pageOf<R, T>(rows: R[], limit: number, map: (r: R) => T, key: (r: R) => string, kind: string): Page<T> {
  const more = rows.length > limit;
  const items = rows.slice(0, limit);
  return { items: items.map(map), nextCursor: more ? encodeCursor(kind, key(items.at(-1)!)) : null };
}

// ───────────────────────────── declarations: captures, functions, topics, subscriptions ─────────────────────────────

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
         LEFT JOIN (SELECT topic, count(*) AS n FROM rowcast.messages WHERE created_at > now() - interval '1 minute' GROUP BY topic) r ON r.topic = t.name
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
      `SELECT name, owner, settings, filter_policy, filter_scope, dead_letter_topic, secret IS NOT NULL AS signed, failing_since, dead_in_row
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
        state: s.state,
        stateReason: s.stateReason,
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

// ───────────────────────────── lag and overview ─────────────────────────────

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
    `SELECT (SELECT count(*) FROM rowcast.events WHERE routed_at IS NULL)::bigint AS events,
            -- The oldest unrouted event by id (the partial index's order): no scan of a large backlog.
            (SELECT extract(epoch FROM now() - captured_at) FROM rowcast.events WHERE routed_at IS NULL ORDER BY id LIMIT 1) AS events_age,
            (SELECT count(*) FROM rowcast.invocations WHERE state IN ('pending', 'in_flight'))::bigint AS invocations,
            (SELECT extract(epoch FROM now() - min(created_at)) FROM rowcast.invocations WHERE state IN ('pending', 'in_flight')) AS invocations_age,
            (SELECT count(*) FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight'))::bigint AS deliveries,
            (SELECT extract(epoch FROM now() - min(created_at)) FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight')) AS deliveries_age`,
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

// ───────────────────────────── history: events, invocations, deliveries ─────────────────────────────

export interface TimeRange {
  since?: Date;
  until?: Date;
}

export interface EventItem {
  id: string;
  capture: string;
  table: string;
  op: string;
  topic: string | null;
  function: string | null;
  key: unknown;
  before: unknown;
  after: unknown;
  changed: string[] | null;
  txid: string;
  trace: string | null;
  capturedAt: Date;
  routedAt: Date | null;
}

/** Captured events kept by retention, newest first; `table` is "schema.table" or a bare table name. */
export async function listEvents(
  pool: Pool,
  filter: { capture?: string; table?: string; topic?: string } & TimeRange & PageRequest = {},
): Promise<Page<EventItem>> {
  const limit = limitOf(filter);
  const after = decodeCursor('event', filter.cursor);
  const [schema, table] = filter.table?.includes('.')
    ? [filter.table.slice(0, filter.table.indexOf('.')), filter.table.slice(filter.table.indexOf('.') + 1)]
    : [null, filter.table ?? null];
  const { rows } = await pool.query(
    `SELECT e.id::text, capture, schema_name, table_name, op, topic, function, key, before, after, changed, txid::text, trace, captured_at, routed_at
       FROM rowcast.events e
      WHERE ($1::text IS NULL OR capture = $1) AND ($2::text IS NULL OR schema_name = $2) AND ($3::text IS NULL OR table_name = $3)
        AND ($4::text IS NULL OR topic = $4) AND ($5::timestamptz IS NULL OR captured_at >= $5) AND ($6::timestamptz IS NULL OR captured_at < $6)
        AND ($7::bigint IS NULL OR e.id < $7)
      ORDER BY e.id DESC LIMIT $8`, // e.id: the column; a bare "id" would be the text alias, and "10" sorts before "9"
    [
      filter.capture ?? null,
      schema,
      table,
      filter.topic ?? null,
      filter.since ?? null,
      filter.until ?? null,
      after,
      limit + 1,
    ],
  );
  return pageOf(
    rows,
    limit,
    (r): EventItem => ({
      id: r.id,
      capture: r.capture,
      table: `${r.schema_name}.${r.table_name}`,
      op: r.op,
      topic: r.topic,
      function: r.function,
      key: r.key,
      before: r.before,
      after: r.after,
      changed: r.changed,
      txid: r.txid,
      trace: r.trace,
      capturedAt: r.captured_at,
      routedAt: r.routed_at,
    }),
    (r) => r.id,
    'event',
  );
}

export interface InvocationItem {
  id: string;
  function: string;
  source: string;
  state: 'pending' | 'in_flight' | 'done' | 'failed';
  attempts: number;
  eventId: string | null;
  messageId: string | null;
  trace: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
  lastError: string | null;
  result: string | null;
  published: string[];
}

/** Invocations kept by retention, newest first. */
export async function listInvocationPage(
  pool: Pool,
  filter: { function?: string; status?: InvocationItem['state'] } & TimeRange & PageRequest = {},
): Promise<Page<InvocationItem>> {
  const limit = limitOf(filter);
  const after = decodeCursor('invocation', filter.cursor);
  const [afterAt, afterId] = after ? after.split('|') : [null, null];
  const { rows } = await pool.query(
    `SELECT id::text, function, source, state, attempts, event_id::text, message_id::text, trace, created_at,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key, started_at, finished_at, duration_ms,
            last_error, result, coalesce(published::text[], '{}') AS published
       FROM rowcast.invocations i
      WHERE ($1::text IS NULL OR function = $1) AND ($2::text IS NULL OR state = $2)
        AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
        AND ($5::timestamptz IS NULL OR (created_at, i.id) < ($5, $6::uuid))
      ORDER BY created_at DESC, i.id DESC LIMIT $7`, // i.id: the uuid, as the cursor compares it, not its text alias
    [
      filter.function ?? null,
      filter.status ?? null,
      filter.since ?? null,
      filter.until ?? null,
      afterAt,
      afterId,
      limit + 1,
    ],
  );
  return pageOf(
    rows,
    limit,
    (r): InvocationItem => ({
      id: r.id,
      function: r.function,
      source: r.source,
      state: r.state,
      attempts: r.attempts,
      eventId: r.event_id,
      messageId: r.message_id,
      trace: r.trace,
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      durationMs: r.duration_ms,
      lastError: r.last_error,
      result: r.result,
      published: r.published,
    }),
    (r) => `${r.created_key}|${r.id}`,
    'invocation',
  );
}

export const DELIVERY_STATES = ['pending', 'in_flight', 'done', 'dead'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface DeliveryItem {
  id: string;
  messageId: string;
  subscription: string;
  topic: string;
  state: DeliveryState;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

export interface DeliveryDetail extends DeliveryItem {
  message: {
    id: string;
    topic: string;
    subject: string | null;
    body: string;
    contentType: string;
    attributes: Record<string, string>;
    eventId: string | null;
    trace: string | null;
    createdAt: Date;
  };
  /** Attempts and the history events between them (redriven, resent, replayed), oldest first. */
  attemptLog: AttemptLogEntry[];
}

export const DELIVERY_COLUMNS = `d.id::text, d.message_id::text, d.subscription, s.topic, d.state, d.attempts, d.last_status, d.last_error, d.created_at, d.updated_at, d.delivered_at`;

export function deliveryItem(r: SqlRow): DeliveryItem {
  return {
    id: r.id,
    messageId: r.message_id,
    subscription: r.subscription,
    topic: r.topic,
    state: r.state,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deliveredAt: r.delivered_at,
  };
}

/**
 * Deliveries (one message to one subscription), newest first. `since`/`until` bound when the delivery was created —
 * for dead ones (`status: 'dead'`), when it went dead, as redrive counts it.
 */
export async function listDeliveries(
  pool: Pool,
  filter: { subscription?: string; topic?: string; status?: DeliveryState } & TimeRange & PageRequest = {},
): Promise<Page<DeliveryItem>> {
  const limit = limitOf(filter);
  const after = decodeCursor('delivery', filter.cursor);
  const { rows } = await pool.query(
    `SELECT ${DELIVERY_COLUMNS}
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription
      WHERE ($1::text IS NULL OR d.subscription = $1) AND ($2::text IS NULL OR s.topic = $2) AND ($3::text IS NULL OR d.state = $3)
        AND ($4::timestamptz IS NULL OR (CASE WHEN $3 = 'dead' THEN d.updated_at ELSE d.created_at END) >= $4)
        AND ($5::timestamptz IS NULL OR (CASE WHEN $3 = 'dead' THEN d.updated_at ELSE d.created_at END) < $5)
        AND ($6::bigint IS NULL OR d.id < $6)
      ORDER BY d.id DESC LIMIT $7`,
    [
      filter.subscription ?? null,
      filter.topic ?? null,
      filter.status ?? null,
      filter.since ?? null,
      filter.until ?? null,
      after,
      limit + 1,
    ],
  );
  return pageOf(rows, limit, deliveryItem, (r) => r.id, 'delivery');
}

/** One delivery with its message and attempt history (the last 20 attempts). */
export async function getDelivery(pool: Pool, id: string): Promise<DeliveryDetail> {
  if (!/^\d{1,19}$/.test(id))
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `"${id}" is not a delivery id: delivery ids are whole numbers (the id field of /api/deliveries items).`,
    );
  const { rows } = await pool.query(
    `SELECT ${DELIVERY_COLUMNS}, d.attempt_log, m.topic AS message_topic, m.subject, m.body, m.content_type, m.attributes, m.event_id::text, m.trace, m.created_at AS message_created_at
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
      WHERE d.id = $1`,
    [id],
  );
  const r = rows[0];
  if (!r)
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No delivery ${id}: it never existed or retention removed it (finished deliveries are kept for runtime.retention).`,
    );
  const log: AttemptLogEntry[] = r.attempt_log ?? [];
  // A delivery that succeeded at its first attempt has no log row (the hot path writes none): its one attempt is known anyway.
  if (r.state === 'done' && !log.some((e) => e.outcome === 'delivered')) {
    log.push({
      attempt: r.attempts,
      at: new Date(r.delivered_at ?? r.updated_at).toISOString(),
      outcome: 'delivered',
      status: r.last_status,
      error: null,
      durationMs: null,
    });
  }
  return {
    ...deliveryItem(r),
    message: {
      id: r.message_id,
      topic: r.message_topic,
      subject: r.subject,
      body: r.body,
      contentType: r.content_type,
      attributes: r.attributes,
      eventId: r.event_id,
      trace: r.trace,
      createdAt: r.message_created_at,
    },
    attemptLog: log,
  };
}

// ───────────────────────────── activity: rates and stats ─────────────────────────────

/**
 * Counts per `kind:name` over the last minute, of every process: the rows they wrote to rowcast.activity plus this
 * process's unwritten ones.
 */
export async function activityRates(pool: Pool, now = Date.now()): Promise<Map<string, Rates>> {
  const since = minuteStart(now);
  const { rows } = await pool.query<{ kind: ActivityRow['kind']; name: string; count: number; errors: number }>(
    `SELECT kind, name, sum(count)::float8 AS count, sum(errors)::float8 AS errors
       FROM rowcast.activity WHERE bucket >= $1 AND kind IN ('subscription', 'function') GROUP BY kind, name`,
    [new Date(since)],
  );
  const stored = rows.map((r): ActivityRow => ({
    bucket: since,
    kind: r.kind,
    name: r.name,
    count: r.count,
    errors: r.errors,
    latency: null,
  }));
  return ratesOf([...stored, ...activity().rows()], now);
}

export interface Stats {
  /** Seconds per point. */
  step: number;
  series: StatsPoint[];
}

/**
 * Events, deliveries, failed attempts and delivery latency percentiles over the last `windowMs` in steps of
 * `stepMs`, of every process. The histograms are summed in the database (their bounds are the same everywhere),
 * then the percentiles read from the sum.
 */
export async function getStats(pool: Pool, windowMs: number, stepMs: number, now = Date.now()): Promise<Stats> {
  if (stepMs < BUCKET_MS || stepMs % BUCKET_MS)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `step must be a multiple of 10s (e.g. 10s, 1m), not ${stepMs / 1000}s.`,
    );
  if (windowMs > 3_600_000 || windowMs < stepMs)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `window must be at least one step and at most 1h (e.g. 15m), not ${windowMs / 1000}s.`,
    );
  const { start, end } = stepsOf(windowMs, stepMs, now);
  const step = `(floor(extract(epoch FROM a.bucket) * 1000 / $3::bigint) * $3::bigint)::float8`;
  const range = [new Date(start), new Date(end), stepMs];
  const [totals, histograms] = await Promise.all([
    pool.query<{ t: number; kind: ActivityRow['kind']; count: number; errors: number }>(
      `SELECT ${step} AS t, a.kind, sum(a.count)::float8 AS count, sum(a.errors)::float8 AS errors
         FROM rowcast.activity a WHERE a.bucket >= $1 AND a.bucket < $2 AND a.kind IN ('subscription', 'router') GROUP BY 1, 2`,
      range,
    ),
    pool.query<{ t: number; i: number; n: number }>(
      `SELECT ${step} AS t, h.i::int AS i, sum(h.n)::float8 AS n
         FROM rowcast.activity a CROSS JOIN LATERAL unnest(a.latency) WITH ORDINALITY AS h(n, i)
        WHERE a.bucket >= $1 AND a.bucket < $2 AND a.kind = 'subscription' GROUP BY 1, 2`,
      range,
    ),
  ]);
  const latency = new Map<number, number[]>();
  for (const h of histograms.rows) {
    const hist = latency.get(h.t) ?? LATENCY_BOUNDS.map(() => 0);
    if (h.i >= 1 && h.i <= hist.length) hist[h.i - 1] = h.n;
    latency.set(h.t, hist);
  }
  const stored = totals.rows.map((r): ActivityRow => ({
    bucket: r.t,
    kind: r.kind,
    name: '',
    count: r.count,
    errors: r.errors,
    latency: r.kind === 'subscription' ? (latency.get(r.t) ?? null) : null,
  }));
  return { step: stepMs / 1000, series: seriesOf([...stored, ...activity().rows()], windowMs, stepMs, now) };
}

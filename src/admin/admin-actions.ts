import { ErrorCodes, RowcastError } from '../model/errors.js';
import { type Pool, withTransaction } from '../store/pool.js';
import { historyEventSql } from '../model/attempt-log.js';
import {
  type FilterAttributeValue,
  type FilterMessage,
  type FilterPolicyScope,
  matchesFilterPolicy,
} from '../model/filter-policy/filter-policy.js';
import { type FunctionInfo, getFunction, notDeclared } from './inspect.js';

/*
 * Actions of the admin API (and the library): pause/resume functions, redrive one delivery, replay a capture's
 * events to one subscription, send a test message, try a filter policy. Each one wakes running processes with
 * NOTIFY rowcast_config (they reload and claim at once).
 */

const wake = (db: Pick<Pool, 'query'>) => db.query(`SELECT pg_notify('rowcast_config', '')`);

async function setFunctionState(
  pool: Pool,
  name: string,
  state: 'active' | 'paused',
  reason: string | null,
): Promise<FunctionInfo> {
  const res = await pool.query(
    `UPDATE rowcast.functions SET state = $2, state_reason = $3, state_changed_at = now() WHERE name = $1 AND state IS DISTINCT FROM $2`,
    [name, state, reason],
  );
  if (res.rowCount) await wake(pool);
  return getFunction(pool, name);
}

/** Stops running a function's invocations (in every process); they stay queued until it is resumed. */
export function pauseFunction(pool: Pool, name: string, reason = 'paused by an operator'): Promise<FunctionInfo> {
  return setFunctionState(pool, name, 'paused', reason);
}

/** Runs a paused function's invocations again. */
export function resumeFunction(pool: Pool, name: string): Promise<FunctionInfo> {
  return setFunctionState(pool, name, 'active', null);
}

/** Puts one dead delivery back to pending with a fresh attempt budget; 409 (CONFLICT) if it is not dead. */
export async function redriveDelivery(pool: Pool, id: string): Promise<number> {
  if (!/^\d{1,19}$/.test(id))
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `"${id}" is not a delivery id: delivery ids are whole numbers.`,
    );
  // A subscription waiting for SNS's confirmation (or unsubscribed) receives nothing but its handshake messages.
  const { rows } = await pool.query<{ state: string; redriven: boolean; subscription: string; sns_state: string }>(
    `WITH x AS (SELECT d.id, d.state, d.subscription, s.sns_state, s.sns_state = 'confirmed' OR m.topic LIKE 'sns:%' AS allowed
                  FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
                 WHERE d.id = $1),
     r AS (UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), attempt_log = ${historyEventSql('d', 'redriven')}
            WHERE id = $1 AND state = 'dead' AND (SELECT allowed FROM x) RETURNING 1)
     SELECT x.state, x.subscription, x.sns_state, EXISTS (SELECT 1 FROM r) AS redriven FROM x`,
    [id],
  );
  if (!rows[0])
    throw new RowcastError(ErrorCodes.NOT_FOUND, `No delivery ${id}: it never existed or retention removed it.`);
  if (!rows[0].redriven && rows[0].state === 'dead') throw unconfirmed(rows[0].subscription, rows[0].sns_state);
  if (!rows[0].redriven)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${rows[0].state}, not dead: only dead deliveries are redriven (replay a capture to send delivered messages again).`,
    );
  await wake(pool);
  return 1;
}

export interface ReplayOptions {
  subscription: string;
  /** Events captured at or after this time… */
  since: Date;
  /** …and before this one (default: now). */
  until?: Date;
  onProgress?: (replayed: number) => void;
}

const REPLAY_CHUNK = 1000;

/**
 * Sends a capture's events captured in [since, until) again to one subscription of its topic, as the same messages
 * (same ids, so receivers can tell a replay from news): finished and dead deliveries go back to pending with a fresh
 * attempt budget; messages the subscription never had (it was created later) get a delivery if its filter policy
 * matches; pending ones are left alone. Only what retention kept can be replayed. Returns how many were queued.
 */
export async function replayCapture(pool: Pool, capture: string, options: ReplayOptions): Promise<number> {
  const c = (
    await pool.query<{ topic: string | null; function: string | null }>(
      'SELECT topic, function FROM rowcast.captures WHERE name = $1',
      [capture],
    )
  ).rows[0];
  if (!c) throw await notDeclared(pool, 'capture', capture);
  if (c.topic === null)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Capture ${capture} invokes function ${c.function}, it publishes to no topic: there is nothing to replay to a subscription.`,
    );
  const s = (
    await pool.query<{
      topic: string;
      filter_policy: object | null;
      filter_scope: FilterPolicyScope;
      sns_state: string;
    }>('SELECT topic, filter_policy, filter_scope, sns_state FROM rowcast.subscriptions WHERE name = $1', [
      options.subscription,
    ])
  ).rows[0];
  if (!s) throw await notDeclared(pool, 'subscription', options.subscription);
  if (s.sns_state !== 'confirmed') throw unconfirmed(options.subscription, s.sns_state);
  if (s.topic !== c.topic)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Subscription ${options.subscription} is on topic ${s.topic}, but capture ${capture} publishes to ${c.topic}: pick a subscription of topic ${c.topic}.`,
    );
  if (options.until && options.until <= options.since)
    throw new RowcastError(ErrorCodes.INVALID_ARGUMENT, 'until must be later than since.');

  // Messages are found by topic and publish order (index on (topic, seq)), starting at the first one created since
  // `since` (BRIN on created_at; a message is created when its event is routed, after it was captured).
  const start = await pool.query<{ seq: string | null }>(
    `SELECT (min(seq) - 1)::text AS seq FROM rowcast.messages WHERE topic = $1 AND created_at >= $2`,
    [c.topic, options.since],
  );
  let cursor = start.rows[0]?.seq ?? null;
  let total = 0;
  while (cursor !== null) {
    const chunk = await withTransaction(pool, async (client) => {
      const { rows } = await client.query<{
        id: string;
        seq: string;
        attributes: Record<string, string>;
        body: string;
        content_type: string;
        delivery: string | null;
        state: string | null;
        group_key: string | null;
        place: string;
      }>(
        `SELECT m.id::text, m.seq::text, m.attributes, m.body, m.content_type, d.id::text AS delivery, d.state,
                CASE WHEN t.fifo THEN coalesce(m.group_key, '') END AS group_key, coalesce(m.event_id, m.seq)::text AS place
           FROM rowcast.messages m JOIN rowcast.topics t ON t.name = m.topic
           JOIN rowcast.events e ON e.id = m.event_id
           LEFT JOIN rowcast.deliveries d ON d.message_id = m.id AND d.subscription = $2
          WHERE m.topic = $1 AND m.seq > $3::bigint AND e.capture = $4 AND e.captured_at >= $5 AND ($6::timestamptz IS NULL OR e.captured_at < $6)
          ORDER BY m.seq LIMIT $7`,
        [c.topic, options.subscription, cursor, capture, options.since, options.until ?? null, REPLAY_CHUNK],
      );
      // Deliveries already pending or in flight are on their way; finished and dead ones are sent again.
      const reset = rows.filter((r) => r.state === 'done' || r.state === 'dead').map((r) => r.delivery!);
      const fresh = rows.filter(
        (r) =>
          r.delivery === null &&
          (!s.filter_policy ||
            matchesFilterPolicy(
              s.filter_policy,
              { attributes: r.attributes, body: s.filter_scope === 'MessageBody' ? parseJson(r) : undefined },
              s.filter_scope,
            )),
      );
      if (reset.length) {
        await client.query(
          `UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), delivered_at = NULL, updated_at = now(), attempt_log = ${historyEventSql('d', 'replayed')}
            WHERE id = ANY($1::bigint[]) AND state IN ('done', 'dead')`,
          [reset],
        );
      }
      if (fresh.length) {
        await client.query(
          `INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq) SELECT m, $2, g, o FROM unnest($1::uuid[], $3::text[], $4::bigint[]) AS x(m, g, o)`,
          [fresh.map((r) => r.id), options.subscription, fresh.map((r) => r.group_key), fresh.map((r) => r.place)],
        );
      }
      return {
        queued: reset.length + fresh.length,
        last: rows.at(-1)?.seq ?? null,
        full: rows.length === REPLAY_CHUNK,
      };
    });
    total += chunk.queued;
    options.onProgress?.(total);
    cursor = chunk.full ? chunk.last : null;
  }
  if (total) await wake(pool);
  return total;
}

function parseJson(r: { body: string; content_type: string }): unknown {
  if (r.content_type !== 'application/json') return undefined;
  try {
    return JSON.parse(r.body);
  } catch {
    return undefined;
  }
}

/**
 * Sends a test message to one subscription only (not to the rest of its topic): a message on its topic with the
 * attribute rowcast-test = "true", delivered like any other (signed, retried, visible in /api/deliveries).
 * `message` is sent as is when it is a string (text/plain), as JSON otherwise. Returns the message id.
 */
export async function sendTestMessage(
  pool: Pool,
  subscription: string,
  options: { subject?: string; message?: unknown } = {},
): Promise<string> {
  return withTransaction(pool, async (client) => {
    const sub = (
      await client.query<{ topic: string; fifo: boolean; sns_state: string }>(
        'SELECT s.topic, t.fifo, s.sns_state FROM rowcast.subscriptions s JOIN rowcast.topics t ON t.name = s.topic WHERE s.name = $1',
        [subscription],
      )
    ).rows[0];
    if (!sub) throw await notDeclared(pool, 'subscription', subscription);
    // As SNS, nothing goes to an endpoint that has not confirmed its subscription, or unsubscribed.
    if (sub.sns_state !== 'confirmed') throw unconfirmed(subscription, sub.sns_state);
    const text = typeof options.message === 'string';
    const body = text
      ? (options.message as string)
      : JSON.stringify(options.message ?? { type: 'rowcast.test', subscription, sentAt: new Date().toISOString() });
    const group = sub.fifo ? 'rowcast-test' : null;
    const { rows } = await client.query<{ id: string; seq: string }>(
      `INSERT INTO rowcast.messages (topic, subject, body, content_type, attributes, group_key)
       VALUES ($1, $2, $3, $4, '{"rowcast-test": "true"}', $5) RETURNING id::text, seq::text`,
      [sub.topic, options.subject ?? 'rowcast test message', body, text ? 'text/plain' : 'application/json', group],
    );
    await client.query(
      'INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq) VALUES ($1, $2, $3, $4)',
      [rows[0]!.id, subscription, group, rows[0]!.seq],
    );
    await wake(client);
    return rows[0]!.id;
  });
}

export interface FilterPolicyVerdict {
  name: string;
  topic: string;
  matched: boolean;
  reason?: string;
}

/**
 * Which subscriptions (of `topic`, or of every topic) would receive a message with this body and these attributes,
 * by the same matcher delivery uses. The body may be a JSON value or a string holding JSON.
 */
export async function testFilterPolicy(
  pool: Pool,
  input: { topic?: string; message: unknown; attributes?: Record<string, FilterAttributeValue> },
): Promise<FilterPolicyVerdict[]> {
  if (input.topic !== undefined) {
    const { rowCount } = await pool.query('SELECT 1 FROM rowcast.topics WHERE name = $1', [input.topic]);
    if (!rowCount) throw await notDeclared(pool, 'topic', input.topic);
  }
  const { rows } = await pool.query<{
    name: string;
    topic: string;
    filter_policy: object | null;
    filter_scope: FilterPolicyScope;
  }>(
    'SELECT name, topic, filter_policy, filter_scope FROM rowcast.subscriptions WHERE $1::text IS NULL OR topic = $1 ORDER BY topic, name',
    [input.topic ?? null],
  );
  let body = input.message;
  if (typeof input.message === 'string') {
    const text = input.message;
    try {
      body = JSON.parse(text);
    } catch (err) {
      // A plain-text body: only attribute policies (and empty ones) can match it. What looks like JSON was meant to be.
      if (/^\s*[{[]/.test(text)) {
        throw new RowcastError(
          ErrorCodes.INVALID_ARGUMENT,
          `Invalid request body: message is not valid JSON (${(err as Error).message}); fix it, or send plain text that does not start with { or [.`,
        );
      }
    }
  }
  const attributes = input.attributes ?? {};
  return rows.map((r) => {
    if (!r.filter_policy)
      return {
        name: r.name,
        topic: r.topic,
        matched: true,
        reason: 'no filter policy: receives every message of its topic',
      };
    const message = { attributes, body: r.filter_scope === 'MessageBody' ? body : undefined };
    const matched = matchesFilterPolicy(r.filter_policy, message, r.filter_scope);
    const on = `on the message ${r.filter_scope === 'MessageBody' ? 'body' : 'attributes'}`;
    return matched
      ? {
          name: r.name,
          topic: r.topic,
          matched,
          reason: `its filter policy (${on}) matches: ${whyMatched(r.filter_policy as Record<string, unknown>, message, r.filter_scope).join('; ')}`,
        }
      : {
          name: r.name,
          topic: r.topic,
          matched,
          reason: `its filter policy (${on}) does not match: ${JSON.stringify(r.filter_policy)}`,
        };
  });
}

/**
 * Why a matching policy matched, one clause per key it tests: `op is "INSERT", one of ["INSERT"]`. Of a "$or", the
 * first branch that matches on its own is explained.
 */
function whyMatched(
  policy: Record<string, unknown>,
  message: FilterMessage,
  scope: FilterPolicyScope,
  path: string[] = [],
): string[] {
  const valueAt = (keys: string[]): unknown => {
    let v: unknown = scope === 'MessageBody' ? message.body : message.attributes;
    for (const k of keys) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v;
  };
  const nest = (keys: string[], inner: Record<string, unknown>): Record<string, unknown> =>
    keys.reduceRight((acc, k) => ({ [k]: acc }), inner);
  return Object.entries(policy).flatMap(([key, value]): string[] => {
    if (key === '$or' && Array.isArray(value)) {
      const branch = value.find((b) =>
        matchesFilterPolicy(nest(path, b as Record<string, unknown>), message, scope),
      ) as Record<string, unknown> | undefined;
      return branch ? whyMatched(branch, message, scope, path) : [];
    }
    if (!Array.isArray(value))
      return value !== null && typeof value === 'object'
        ? whyMatched(value as Record<string, unknown>, message, scope, [...path, key])
        : [];
    const found = valueAt([...path, key]);
    const plain = value.every((c) => c === null || typeof c !== 'object');
    return [
      `${[...path, key].join('.')} is ${found === undefined ? 'absent' : JSON.stringify(found)}, ${plain ? 'one of' : 'which passes'} ${JSON.stringify(value)}`,
    ];
  });
}

/** 409 for a subscription in SNS's handshake: it receives no messages until confirmed (docs/sns.md). */
/** 409 for an SNS subscription that is not confirmed: it receives nothing but its handshake messages. */
export function unconfirmed(subscription: string, snsState: string): RowcastError {
  return new RowcastError(
    ErrorCodes.CONFLICT,
    `subscription ${subscription} is ${snsState === 'unsubscribed' ? 'unsubscribed (through its UnsubscribeURL)' : "waiting for its endpoint to confirm it (SNS's SubscriptionConfirmation)"}; it receives no messages until confirmed`,
  );
}

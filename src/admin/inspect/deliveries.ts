import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { AttemptLogEntry } from '../../model/attempt-log.js';
import { type FilterPolicyScope, messagePassesFilter } from '../../model/filter-policy/filter-policy.js';
import { PROTOCOL_BODY } from '../../routing/fan-out.js';
import type { Pool } from '../../store/pool.js';
import type { SqlRow } from '../../store/sql.js';
import { decodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

export type { AttemptLogEntry };

/* Deliveries (one message to one subscription): lists by subscription, topic, state and time, and one in detail. */

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
  /**
   * A delivery of a subscription that reads its topic through a cursor, with no row of its own: its state is where
   * the cursor is. `passed`: the last seq the cursor handed out; a message at or below it, in no open range, was
   * delivered (a failed attempt would have left a row).
   */
  cursor?: { passed: string };
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

/** A delivery's id: a row's (a whole number), or a cursor's `subscription@seq`, as logs, spans and the live tail show it. */
export type DeliveryId = { row: string } | { subscription: string; seq: string };

export function parseDeliveryId(id: string): DeliveryId {
  if (/^\d{1,19}$/.test(id)) return { row: id };
  const cursor = /^([A-Za-z0-9_-]{1,256})@(\d{1,19})$/.exec(id);
  if (cursor) return { subscription: cursor[1]!, seq: cursor[2]! };
  throw new RowcastError(
    ErrorCodes.INVALID_ARGUMENT,
    `"${id}" is not a delivery id: a delivery id is a whole number (the id field of /api/deliveries items), or subscription@seq for a subscription that reads through a cursor (as logs and the live tail show it).`,
  );
}

/** A cursor's delivery that has no row of its own: where its cursor stands, and its message (`r`). */
export interface RowlessDelivery {
  row: null;
  subscription: string;
  seq: string;
  state: 'pending' | 'in_flight' | 'done';
  attempts: number;
  passed: string;
  r: SqlRow;
}

/**
 * The delivery an id names: a row (a row's id, or a cursor's delivery that has one: a failed attempt, a resend), or a
 * cursor's delivery without one. Not found: the subscription or the message is gone, the subscription does not read
 * through a cursor, or the cursor does not send it the message (cursorSkips).
 */
export async function resolveDelivery(pool: Pool, id: string): Promise<{ row: string } | RowlessDelivery> {
  const parsed = parseDeliveryId(id);
  if ('row' in parsed) return parsed;
  const { subscription, seq } = parsed;
  const { rows } = await pool.query(
    `SELECT s.name, s.topic, s.filter_policy, s.filter_scope, s.sns_state, c.leased_to::text,
            m.id::text AS message_id, m.topic AS message_topic, m.subject, m.content_type, m.attributes, m.event_id::text,
            m.trace, m.created_at, m.created_at AS updated_at, m.created_at AS message_created_at, ${PROTOCOL_BODY},
            ${CURSOR_STATE_SQL},
            (SELECT max(d.id)::text FROM rowcast.deliveries d WHERE d.message_id = m.id AND d.subscription = s.name) AS row_id,
            -- Messages before the cursor were the rows' (or came before the subscription).
            NOT ${CURSORS_MESSAGE_SQL} AS before_cursor
       FROM rowcast.subscriptions s
       -- The message row of that seq, or its segment's entry (migration 042).
       LEFT JOIN LATERAL rowcast.log_messages(s.topic, $2::bigint - 1, $2::bigint) m ON true
       LEFT JOIN rowcast.cursors c ON c.subscription = s.name
       ${OPEN_RANGE_SQL}
      WHERE s.name = $1`,
    [subscription, seq],
  );
  const r = rows[0];
  const missing = (why: string) =>
    new RowcastError(ErrorCodes.NOT_FOUND, `No delivery ${subscription}@${seq}: ${why}.`);
  if (!r) throw missing(`there is no subscription ${subscription}`);
  if (!r.message_id)
    throw missing(`topic ${r.topic} has no message ${seq} (it never existed, or retention removed it)`);
  if (r.row_id) return { row: r.row_id };
  if (r.leased_to === null)
    throw missing(`${subscription} does not read through a cursor, and the message has no delivery row`);
  if (r.before_cursor)
    throw missing(`the message came before ${subscription} read through a cursor, and it has no delivery row`);
  const skipped = cursorSkips(r, r);
  if (skipped) throw missing(skipped);
  return { row: null, subscription, seq, state: r.cursor_state, attempts: r.cursor_attempts, passed: r.leased_to, r };
}

/**
 * Why a cursor does not send subscription `sub` message `m` (its body as sent, PROTOCOL_BODY), or null if it does:
 * as with rows, nothing goes to an SNS subscription awaiting its confirmation, nor went while it did (the cursor
 * passed the message then: rowcast.cursor_skips); nor a message sent to one subscription only; and its filter
 * policy, run as the cursor runs it.
 */
export function cursorSkips(
  /** name, sns_state, filter_policy, filter_scope */
  sub: SqlRow,
  /** attributes, body, content_type, passed_unconfirmed and recipient (CURSOR_STATE_SQL) */
  m: SqlRow,
): string | null {
  // Its row delivers a message sent to one subscription only; every cursor passes it (migration 038).
  if (m.recipient) return `the message was sent to ${m.recipient} only (a test message), by a delivery row`;
  if (sub.sns_state !== 'confirmed')
    return `${sub.name} is ${sub.sns_state === 'unsubscribed' ? 'unsubscribed' : 'waiting for its SNS confirmation'}: it gets no messages`;
  if (m.passed_unconfirmed)
    return `${sub.name} was waiting for its SNS confirmation (or unsubscribed) when the message was published, so it was not sent`;
  const message = { attributes: m.attributes, body: m.body, contentType: m.content_type };
  if (sub.filter_policy && !messagePassesFilter(sub.filter_policy, sub.filter_scope as FilterPolicyScope, message))
    return `${sub.name}'s filter policy does not match the message`;
  return null;
}

/**
 * SQL: a row-less delivery's state and attempts from its cursor (`c`, rowcast.cursors) and the open range its
 * message `m` lies in (`l`, rowcast.cursor_leases, or nulls): in a range in flight, past `leased_to` pending, else
 * delivered (a failed attempt would have left a row, written as its range completed) at the first attempt unless
 * its range was taken over (rowcast.cursor_retakes).
 */
export const CURSOR_STATE_SQL = `CASE WHEN l.attempts IS NOT NULL THEN 'in_flight' WHEN m.seq <= c.leased_to THEN 'done' ELSE 'pending' END AS cursor_state,
  CASE WHEN l.attempts IS NOT NULL THEN l.attempts
       -- A cursor's ranges never overlap: the one that starts nearest below the message is the only one it may lie in.
       WHEN m.seq <= c.leased_to THEN coalesce((SELECT t.attempts
                                                  FROM (SELECT * FROM rowcast.cursor_retakes t
                                                         WHERE t.subscription = c.subscription AND t.from_seq < m.seq
                                                         ORDER BY t.from_seq DESC LIMIT 1) t
                                                 WHERE m.seq <= t.to_seq), 1)
       ELSE 0 END AS cursor_attempts,
  EXISTS (SELECT 1 FROM rowcast.cursor_skips k
           WHERE k.subscription = c.subscription AND m.seq > k.from_seq AND m.seq <= k.to_seq) AS passed_unconfirmed,
  m.recipient`;

/**
 * SQL: message `m` is cursor `c`'s to deliver: it comes after where the cursor started (migration 041; a cursor
 * started before it, by when: after the cursor's row was made). The messages before it were the rows'.
 */
export const CURSORS_MESSAGE_SQL = `(CASE WHEN c.start_seq IS NOT NULL THEN m.seq > c.start_seq ELSE m.created_at >= c.created_at END)`;

/** The open range of subscription `s` that message `m` lies in, if any (as `l`, for CURSOR_STATE_SQL). */
export const OPEN_RANGE_SQL = `LEFT JOIN LATERAL (SELECT l.attempts FROM rowcast.cursor_leases l
   WHERE l.subscription = c.subscription AND m.seq > l.from_seq AND m.seq <= l.to_seq) l ON true`;

/** One delivery with its message and attempt history (the last 20 attempts). */
export async function getDelivery(pool: Pool, id: string): Promise<DeliveryDetail> {
  const found = await resolveDelivery(pool, id);
  if (found.row === null) return cursorDeliveryDetail(id, found);
  const { rows } = await pool.query(
    `SELECT ${DELIVERY_COLUMNS}, d.attempt_log, m.topic AS message_topic, m.subject, m.body, m.content_type, m.attributes, m.event_id::text, m.trace, m.created_at AS message_created_at
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
      WHERE d.id = $1`,
    [found.row],
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
  return { ...deliveryItem(r), message: messageOf(r), attemptLog: log };
}

/** A cursor's delivery with no row: what its cursor says of it. */
function cursorDeliveryDetail(id: string, found: RowlessDelivery): DeliveryDetail {
  const { r } = found;
  return {
    id,
    messageId: r.message_id,
    subscription: r.name,
    topic: r.topic,
    state: found.state,
    attempts: found.attempts,
    lastStatus: null,
    lastError: null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    // Not recorded: a cursor writes nothing per delivered message.
    deliveredAt: null,
    message: messageOf(r),
    attemptLog: [],
    cursor: { passed: found.passed },
  };
}

function messageOf(r: SqlRow): DeliveryDetail['message'] {
  return {
    id: r.message_id,
    topic: r.message_topic,
    subject: r.subject,
    body: r.body,
    contentType: r.content_type,
    attributes: r.attributes,
    eventId: r.event_id,
    trace: r.trace,
    createdAt: r.message_created_at,
  };
}

import { OPERATIONS } from '../../config/capture-schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { Pool } from '../../store/pool.js';
import { PROTOCOL_BODY } from '../../routing/fan-out.js';
import type { SqlRow } from '../../store/sql.js';
import {
  CURSOR_STATE_SQL,
  CURSORS_MESSAGE_SQL,
  cursorSkips,
  DELIVERY_COLUMNS,
  OPEN_RANGE_SQL,
  deliveryItem,
  type DeliveryItem,
  type DeliveryState,
} from './deliveries.js';
import { decodeCursor, encodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

/*
 * Find a row's deliveries: deliveries by capture, operation, row key, subscription, topic, state and time. A
 * captured message's group_key is its row's key (the primary-key values as jsonb text, see route-events.ts), so a
 * row-key search reads the hash index messages_group_key and then deliveries_message: it never scans deliveries.
 */

export interface DeliverySearch extends TimeRange, PageRequest {
  subscription?: string;
  topic?: string;
  status?: DeliveryState;
  /** The capture that produced the message. */
  capture?: string;
  /** INSERT, UPDATE, DELETE or TRUNCATE (any case). */
  op?: string;
  /** The captured row's primary key: `id=42`, `tenant=a,id=42`, or JSON `{"id": 42}`. */
  rowKey?: string;
}

export interface DeliverySearchItem extends DeliveryItem {
  /** The captured row's primary-key values (null for messages that are not captured changes). */
  rowKey: Record<string, unknown> | null;
  capture: string | null;
  op: string | null;
}

/** At most this many spellings of a row key are looked up (a value typed as 42 may be stored as 42 or "42"). */
const MAX_KEY_FORMS = 64;

/**
 * The stored forms a row key may have. bigint and numeric key columns arrive as JSON strings and int ones as
 * numbers, and `id=42` does not say which: both are looked for. The text itself is looked for too (a function's
 * publish may set any group key).
 */
export function rowKeyForms(input: string): string[] {
  const text = input.trim();
  if (!text)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      'rowKey is empty; write the row\'s primary key, e.g. id=42, tenant=a,id=42 or {"id": 42}.',
    );
  let pairs: [string, unknown[]][];
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RowcastError(
        ErrorCodes.INVALID_ARGUMENT,
        `rowKey is not valid JSON (${(err as Error).message}); write e.g. {"id": 42} or id=42.`,
      );
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || !Object.keys(parsed).length) {
      throw new RowcastError(
        ErrorCodes.INVALID_ARGUMENT,
        'rowKey must be a JSON object of the primary-key columns, e.g. {"id": 42}.',
      );
    }
    pairs = Object.entries(parsed as Record<string, unknown>).map(([k, v]) => [k, valueForms(v)]);
  } else {
    pairs = text.split(',').map((part) => {
      const eq = part.indexOf('=');
      if (eq <= 0) {
        throw new RowcastError(
          ErrorCodes.INVALID_ARGUMENT,
          `rowKey "${text}" names no column; write column=value pairs separated by commas (id=42, tenant=a,id=42) or JSON ({"id": 42}).`,
        );
      }
      return [part.slice(0, eq).trim(), textForms(part.slice(eq + 1).trim())];
    });
  }
  let objects: Record<string, unknown>[] = [{}];
  for (const [column, values] of pairs) objects = objects.flatMap((o) => values.map((v) => ({ ...o, [column]: v })));
  if (objects.length > MAX_KEY_FORMS)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `rowKey "${text}" has too many columns to look up; give at most 6.`,
    );
  return [...new Set([...objects.map((o) => JSON.stringify(o)), text])];
}

/** A typed value as stored: numbers also as strings (bigint, numeric keys), numeric strings also as numbers. */
function valueForms(v: unknown): unknown[] {
  if (typeof v === 'number') return [v, String(v)];
  if (typeof v === 'string') return textForms(v, false);
  return [v];
}

function textForms(v: string, literals = true): unknown[] {
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v) && Number.isFinite(Number(v))) return [v, Number(v)];
  if (literals && (v === 'true' || v === 'false' || v === 'null')) return [v, JSON.parse(v)];
  return [v];
}

/**
 * Deliveries matching every given filter, newest first, paged by id like /api/deliveries. `since`/`until` bound
 * when the delivery was created (for dead ones, when it went dead, as the list does).
 */
export async function searchDeliveries(pool: Pool, search: DeliverySearch = {}): Promise<Page<DeliverySearchItem>> {
  const limit = limitOf(search);
  if (search.subscription !== undefined) {
    const { rows } = await pool.query(
      `SELECT s.name, s.filter_policy, s.filter_scope, s.sns_state
         FROM rowcast.subscriptions s JOIN rowcast.cursors c ON c.subscription = s.name WHERE s.name = $1`,
      [search.subscription],
    );
    if (rows[0]) return searchCursorDeliveries(pool, { ...search, subscription: search.subscription }, limit, rows[0]);
  }
  const { rows } = await pool.query(searchQuery(search, limit));
  return pageOf(
    rows,
    limit,
    (r): DeliverySearchItem => ({
      ...deliveryItem(r),
      rowKey: r.captured && r.group_key ? parseKey(r.group_key) : null,
      capture: r.captured ? r.capture : null,
      op: r.captured ? r.op : null,
    }),
    (r) => r.id,
    'delivery',
  );
}

/** The search's statement (limit + 1 rows: the extra one says whether there is a next page); exported for EXPLAIN in tests. */
export function searchQuery(search: DeliverySearch, limit: number): { text: string; values: unknown[] } {
  const after = decodeCursor('delivery', search.cursor);
  const params: unknown[] = [];
  const param = (v: unknown) => `$${params.push(v)}`;
  const where: string[] = [];
  let rowKeyed = '';
  if (search.rowKey !== undefined) {
    // The messages of the row first (hash index), materialized so that the planner joins from them, never from a
    // backward scan of all deliveries.
    rowKeyed = `WITH keyed AS MATERIALIZED (SELECT id FROM rowcast.messages WHERE group_key IS NOT NULL
                  AND group_key = ANY (ARRAY(SELECT CASE WHEN k LIKE '{%' THEN k::jsonb::text ELSE k END FROM unnest(${param(rowKeyForms(search.rowKey))}::text[]) k)))\n`;
    where.push('d.message_id IN (SELECT id FROM keyed)');
  }
  if (search.subscription !== undefined) where.push(`d.subscription = ${param(search.subscription)}`);
  if (search.topic !== undefined) where.push(`s.topic = ${param(search.topic)}`);
  if (search.status !== undefined) where.push(`d.state = ${param(search.status)}`);
  // Captured changes carry their capture and operation as attributes (and an event id, which a function's publish has not).
  if (search.capture !== undefined)
    where.push(`m.event_id IS NOT NULL AND m.attributes ->> 'capture' = ${param(search.capture)}`);
  if (search.op !== undefined)
    where.push(`m.event_id IS NOT NULL AND m.attributes ->> 'op' = ${param(operation(search.op))}`);
  const at = search.status === 'dead' ? 'd.updated_at' : 'd.created_at';
  if (search.since) where.push(`${at} >= ${param(search.since)}`);
  if (search.until) where.push(`${at} < ${param(search.until)}`);
  if (after !== null) where.push(`d.id < ${param(after)}::bigint`);
  return {
    text: `${rowKeyed}SELECT ${DELIVERY_COLUMNS}, m.group_key, m.event_id IS NOT NULL AS captured, m.attributes ->> 'capture' AS capture, m.attributes ->> 'op' AS op
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY d.id DESC LIMIT ${param(limit + 1)}`, // d.id: the column, not its text alias ("10" < "9")
    values: params,
  };
}

/**
 * The deliveries of a subscription that reads through a cursor, newest message first, paged by the message's seq:
 * each message of its topic that has a row of the subscription (the row is the delivery), or that came after the
 * cursor began (its state read off the cursor, CURSOR_STATE_SQL) and its filter policy matches. The filter policy
 * runs here, as the cursor runs it, so a page may hold fewer than `limit` items.
 */
async function searchCursorDeliveries(
  pool: Pool,
  search: DeliverySearch & { subscription: string },
  limit: number,
  cursor: SqlRow,
): Promise<Page<DeliverySearchItem>> {
  const after = decodeCursor('cursor-delivery', search.cursor);
  const params: unknown[] = [search.subscription];
  const param = (v: unknown) => `$${params.push(v)}`;
  const where: string[] = [];
  if (search.topic !== undefined) where.push(`m.topic = ${param(search.topic)}`);
  if (search.rowKey !== undefined)
    where.push(`m.group_key IS NOT NULL AND m.group_key = ANY (ARRAY(SELECT CASE WHEN k LIKE '{%' THEN k::jsonb::text ELSE k END
                  FROM unnest(${param(rowKeyForms(search.rowKey))}::text[]) k))`);
  if (search.capture !== undefined)
    where.push(`m.event_id IS NOT NULL AND m.attributes ->> 'capture' = ${param(search.capture)}`);
  if (search.op !== undefined)
    where.push(`m.event_id IS NOT NULL AND m.attributes ->> 'op' = ${param(operation(search.op))}`);
  if (search.since) where.push(`m.created_at >= ${param(search.since)}`);
  if (search.until) where.push(`m.created_at < ${param(search.until)}`);
  const before = after === null ? null : param(after);
  const limitParam = param(limit + 1);
  const status =
    search.status === undefined ? '' : `WHERE coalesce(x.row_state, x.cursor_state) = ${param(search.status)}`;
  const page = (source: string) =>
    pool.query(
      `SELECT x.* FROM (
         SELECT m.seq, m.id::text AS message_id, m.topic, m.created_at, m.attributes, m.content_type,
                ${PROTOCOL_BODY}, m.group_key, m.event_id IS NOT NULL AS captured,
                m.attributes ->> 'capture' AS capture, m.attributes ->> 'op' AS op, d.id::text AS row_id, d.state AS row_state,
                d.attempts AS row_attempts, d.last_status, d.last_error, d.created_at AS row_created_at, d.updated_at,
                d.delivered_at, ${CURSOR_STATE_SQL}
           FROM rowcast.cursors c JOIN rowcast.subscriptions s ON s.name = c.subscription ${source}
           LEFT JOIN LATERAL (SELECT * FROM rowcast.deliveries d WHERE d.message_id = m.id AND d.subscription = $1
                               ORDER BY d.id DESC LIMIT 1) d ON true
           ${OPEN_RANGE_SQL}
          WHERE c.subscription = $1 AND (d.id IS NOT NULL OR ${CURSORS_MESSAGE_SQL})
            ${where.map((w) => `AND ${w}`).join(' ')}) x
        ${status}
        ORDER BY x.seq DESC LIMIT ${limitParam}`,
      params,
    );
  // The topic's message rows, newest first by index, and apart from them its segments' entries (migration 042): a
  // union of the two would sort the topic's whole log for every page. Entries are built only in a window (lo, hi]
  // of the newest segments below the page's cursor that hold limit + 1 of them, and message rows are read in the
  // same window: a page of a topic with a million kept entries builds a page's worth, not the million. Where the
  // filters leave fewer than limit + 1 in the window, the page is short and the next one starts below it.
  const hi = before ? `${before}::bigint - 1` : '9223372036854775807';
  const { rows: window } = await pool.query(
    `SELECT coalesce((
       SELECT w.first_seq - 1 FROM (
         SELECT g.first_seq, sum(g.entries) OVER (ORDER BY g.last_seq DESC) AS total
           FROM (SELECT g.first_seq, g.last_seq, g.entries
                   FROM rowcast.subscriptions s JOIN rowcast.log_segments g ON g.topic = s.topic
                  WHERE s.name = $1 AND g.last_seq < coalesce($2::bigint, 9223372036854775807)
                  ORDER BY g.last_seq DESC LIMIT $3) g) w
        WHERE w.total >= $3 ORDER BY w.total LIMIT 1), 0)::text AS lo`,
    [search.subscription, after, limit + 1],
  );
  const lo = window[0].lo as string;
  const [messages, entries] = [
    await page(
      `JOIN rowcast.messages m ON m.topic = s.topic AND NOT m.from_segment AND m.seq > ${lo}::bigint${before ? ` AND m.seq < ${before}::bigint` : ''}`,
    ),
    await page(`CROSS JOIN LATERAL rowcast.segment_messages(s.topic, ${lo}::bigint, ${hi}) m`),
  ];
  const rows = [...messages.rows, ...entries.rows]
    .sort((a, b) => (BigInt(b.seq) > BigInt(a.seq) ? 1 : -1))
    .slice(0, limit + 1);
  const scanned = rows.slice(0, limit);
  const next = rows.length > limit ? String(scanned.at(-1)!.seq) : lo !== '0' ? String(BigInt(lo) + 1n) : null;
  return {
    items: scanned.flatMap((r) => cursorItem(search.subscription, cursor, r) ?? []),
    nextCursor: next === null ? null : encodeCursor('cursor-delivery', next),
  };
}

/** A message of a cursor's list as a delivery: its row's, or what the cursor says; null if it is not one. */
function cursorItem(subscription: string, cursor: SqlRow, r: SqlRow): DeliverySearchItem | null {
  const found = {
    rowKey: r.captured && r.group_key ? parseKey(r.group_key) : null,
    capture: r.captured ? r.capture : null,
    op: r.captured ? r.op : null,
  };
  if (r.row_id)
    return {
      ...deliveryItem({
        ...r,
        id: r.row_id,
        subscription,
        state: r.row_state,
        attempts: r.row_attempts,
        created_at: r.row_created_at,
      }),
      ...found,
    };
  if (cursorSkips(cursor, r)) return null;
  return {
    id: `${subscription}@${r.seq}`,
    messageId: r.message_id,
    subscription,
    topic: r.topic,
    state: r.cursor_state,
    attempts: r.cursor_attempts,
    lastStatus: null,
    lastError: null,
    createdAt: r.created_at,
    updatedAt: r.created_at,
    deliveredAt: null,
    ...found,
  };
}

function operation(op: string): string {
  const upper = op.toUpperCase();
  if (!(OPERATIONS as readonly string[]).includes(upper))
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `op "${op}" is not an operation; use one of ${OPERATIONS.join(', ')}.`,
    );
  return upper;
}

function parseKey(text: string): Record<string, unknown> | null {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

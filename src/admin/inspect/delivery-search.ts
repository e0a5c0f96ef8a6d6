import { OPERATIONS } from '../../config/capture-schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { Pool } from '../../store/pool.js';
import { DELIVERY_COLUMNS, deliveryItem, type DeliveryItem, type DeliveryState } from './deliveries.js';
import { decodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

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
  if (search.op !== undefined) {
    const op = search.op.toUpperCase();
    if (!(OPERATIONS as readonly string[]).includes(op))
      throw new RowcastError(
        ErrorCodes.INVALID_ARGUMENT,
        `op "${search.op}" is not an operation; use one of ${OPERATIONS.join(', ')}.`,
      );
    where.push(`m.event_id IS NOT NULL AND m.attributes ->> 'op' = ${param(op)}`);
  }
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

function parseKey(text: string): Record<string, unknown> | null {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

import { type EventMessage, eventMessage } from '../model/event-message.js';
import { type ClaimedDelivery, toClaimedDelivery } from './deliveries.js';
import type { SqlRow } from './sql.js';

/**
 * Ranges of the log leased from subscriptions' cursors (rowcast.lease_log_ranges, migrations 030, 032, 035), as
 * the claims and the statements that append messages (routing, a function's results) return them: the horizon
 * first, then the leased messages.
 */

/** Where the log is settled, as this process last saw it: passed back to each lease (see rowcast.lease_log_ranges). */
export interface LogHorizon {
  /** Every message with seq <= settled is committed or rolled back. */
  settled: string;
  /** The last value of the sequence when barrierWriters were the transactions writing messages. */
  barrierSeq: string | null;
  barrierWriters: string[];
}

/** SQL: the log's end, the last seq drawn for rowcast.messages (0 before the first); where a new cursor starts. */
export const LOG_END_SQL = `coalesce(pg_sequence_last_value(pg_get_serial_sequence('rowcast.messages', 'seq')::regclass), 0)`;

export const INITIAL_HORIZON: LogHorizon = { settled: '0', barrierSeq: null, barrierWriters: [] };

/** A leased range (fromSeq, toSeq] of a subscription's cursor. */
export interface LogRange {
  subscription: string;
  fromSeq: string;
  toSeq: string;
  lease: string;
  attempt: number;
}

export interface LeasedMessage {
  range: LogRange;
  delivery: ClaimedDelivery;
  /** On a FIFO topic, the message's group ('' for none), and whether a delivery row holds that group back. */
  fifo: { group: string; held: boolean } | null;
}

/** A segment entry's event (migration 043), from which readLease builds its message; NULL on other rows. */
const EVENT_COLUMNS = `l.event_id::text, l.event_op, l.event_source, l.event_capture, l.event_schema, l.event_table,
          l.event_txid, l.event_key, l.event_before, l.event_after, l.event_changed, l.event_captured_at`;

/** The lease's columns (rowcast.lease_log_ranges, as `l`) as the rows' claim returns them, and its range. */
export const LEASE_COLUMNS = `l.kind, l.subscription, l.from_seq::text, l.to_seq::text, l.lease::text, l.attempt, l.writers,
          l.subscription || '@' || l.seq AS delivery_id, l.message_id::text, l.topic, l.subject, l.body, l.content_type,
          l.attributes, l.attribute_types, l.created_at, l.trace, l.max_message_size, l.large_messages,
          l.claim_check_ttl_ms, l.group_key, l.held, ${EVENT_COLUMNS}`;

/** EVENT_COLUMNS' NULLs, for a row beside the lease's that is not a segment entry (a claimed delivery row). */
export const NO_EVENT_COLUMNS = EVENT_COLUMNS.replace(/l\.(event_\w+)(::text)?/g, 'NULL AS $1');

/** A lease's rows: the horizon first, then its messages with their ranges. */
export function readLease(rows: SqlRow[]): { horizon: LogHorizon; messages: LeasedMessage[] } {
  const head = rows[0]!;
  const built = buildEntryMessages(head.message_id, rows);
  const ranges = new Map<string, LogRange>();
  const messages: LeasedMessage[] = [];
  for (const r of rows.slice(1)) {
    const key = `${r.subscription}\0${r.from_seq}`;
    let range = ranges.get(key);
    if (!range)
      ranges.set(
        key,
        (range = {
          subscription: r.subscription,
          fromSeq: r.from_seq,
          toSeq: r.to_seq,
          lease: r.lease,
          attempt: r.attempt,
        }),
      );
    if (r.event_id !== null) {
      const entry = built.get(r.event_id);
      // Its event is gone (deleted since it was routed): as the lease's join to it, no message.
      if (!entry) continue;
      r.message_id = entry.message.id;
      r.body = entry.message.body;
      r.attributes = { ...entry.message.attributes };
      r.subject = entry.subject;
      r.trace = entry.trace;
    }
    // A cursor's message has no row: its id in logs, spans and the tail is subscription@seq.
    messages.push({
      range,
      delivery: toClaimedDelivery(r),
      fifo: r.group_key === null ? null : { group: r.group_key, held: r.held },
    });
  }
  return {
    horizon: { settled: head.from_seq, barrierSeq: head.to_seq, barrierWriters: head.writers ?? [] },
    messages,
  };
}

/**
 * The messages of the segment entries among a lease's rows, by event id, built once per event with the
 * installation's id the horizon row carries. A lease returns an event's columns once (migration 046): the other
 * cursors' entries of it come with the event id alone (event_op NULL) and share the message.
 */
function buildEntryMessages(
  installation: string,
  rows: SqlRow[],
): Map<string, { message: EventMessage; subject: string | null; trace: string | null }> {
  const built = new Map<string, { message: EventMessage; subject: string | null; trace: string | null }>();
  for (const r of rows)
    if (r.event_op !== null && r.event_id !== null && !built.has(r.event_id))
      built.set(r.event_id, {
        message: recentMessage(`${installation}/${r.event_id}`, () =>
          eventMessage(installation, {
            id: r.event_id,
            op: r.event_op,
            source: r.event_source,
            capture: r.event_capture,
            schema: r.event_schema,
            table: r.event_table,
            txid: r.event_txid,
            key: r.event_key,
            before: r.event_before,
            after: r.event_after,
            changed: r.event_changed,
            capturedAt: r.event_captured_at,
            trace: r.trace,
          }),
        ),
        subject: r.subject,
        trace: r.trace,
      });
  return built;
}

/**
 * Messages built lately, by installation and event id. At fan-out every cursor leases every entry, mostly in a later
 * lease call than the first cursor's (cursors drift apart), and an event, so its message, never changes. The oldest
 * go first.
 */
const recent = new Map<string, EventMessage>();
const RECENT_MESSAGES = 4096;

function recentMessage(key: string, build: () => EventMessage): EventMessage {
  let message = recent.get(key);
  if (!message) {
    recent.set(key, (message = build()));
    if (recent.size > RECENT_MESSAGES) recent.delete(recent.keys().next().value!);
  }
  return message;
}

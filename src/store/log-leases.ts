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

/** A segment entry's message, as built from its event, and the entry's seq. */
export interface EntryMessage {
  message: EventMessage;
  subject: string | null;
  trace: string | null;
  seq: bigint;
}

/** A lease's rows: the horizon first, then its messages with their ranges. */
export function readLease(
  rows: SqlRow[],
  sent: HeldWindows | null = null,
): { horizon: LogHorizon; messages: LeasedMessage[] } {
  const head = rows[0]!;
  const built = buildEntryMessages(head.message_id, rows, sent);
  const ranges = new Map<string, LogRange>();
  // Per range of a topic that is not FIFO, its entries: every entry of the topic in the range (those whose event is
  // gone aside), so the process holds the messages of all of them.
  const held = sent && new Map<LogRange, { topic: string; entries: Map<string, EntryMessage> }>();
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
      // An entry with its event id alone: its event came earlier in this call, or the process holds its message.
      const entry = built.get(r.event_id) ?? sent?.messages.get(r.topic)?.get(r.event_id);
      // Its event is gone (deleted since it was routed): as the lease's join to it, no message.
      if (!entry) continue;
      r.message_id = entry.message.id;
      r.body = entry.message.body;
      r.attributes = { ...entry.message.attributes };
      r.subject = entry.subject;
      r.trace = entry.trace;
      if (held && r.group_key === null && (!sent!.of || sent!.of.has(r.topic))) {
        let h = held.get(range);
        if (!h) held.set(range, (h = { topic: r.topic, entries: new Map() }));
        h.entries.set(r.event_id, entry);
      }
    }
    // A cursor's message has no row: its id in logs, spans and the tail is subscription@seq.
    messages.push({
      range,
      delivery: toClaimedDelivery(r),
      fifo: r.group_key === null ? null : { group: r.group_key, held: r.held },
    });
  }
  if (sent && held)
    for (const [range, { topic, entries }] of held)
      sent.holder.hold(topic, BigInt(range.fromSeq), BigInt(range.toSeq), entries);
  return {
    horizon: { settled: head.from_seq, barrierSeq: head.to_seq, barrierWriters: head.writers ?? [] },
    messages,
  };
}

/**
 * The messages of the segment entries among a lease's rows that came with their events, by event id, built once per
 * event with the installation's id the horizon row carries — or taken from what the process holds, when a lease
 * that was told nothing (routing's) returns an event again.
 */
function buildEntryMessages(installation: string, rows: SqlRow[], sent: HeldWindows | null): Map<string, EntryMessage> {
  const built = new Map<string, EntryMessage>();
  for (const r of rows)
    if (r.event_op !== null && r.event_id !== null && !built.has(r.event_id))
      built.set(
        r.event_id,
        sent?.holder.get(r.topic, r.event_id) ?? {
          message: eventMessage(installation, {
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
          subject: r.subject,
          trace: r.trace,
          seq: seqOf(r),
        },
      );
  return built;
}

/** A lease row's seq, from its delivery id (subscription@seq). */
const seqOf = (r: SqlRow): bigint => BigInt(r.delivery_id.slice(r.delivery_id.lastIndexOf('@') + 1));

/**
 * What a lease is told the process holds (rowcast.lease_log_ranges' known_topics, known_lo, known_hi: a topic once
 * per stretch of seqs), and the messages.
 */
export interface HeldWindows {
  topics: string[];
  lo: string[];
  hi: string[];
  /** Per topic, by event id: the maps as they were when the lease was sent (entries are added, never removed). */
  messages: Map<string, ReadonlyMap<string, EntryMessage>>;
  holder: HeldEntries;
  /** The topics told, and held from this lease's rows: all when null. */
  of: ReadonlySet<string> | null;
}

/** A topic's held messages, and the stretches (lo, hi] of seqs all of whose entries are among them: apart, in order. */
interface HeldTopic {
  stretches: { lo: bigint; hi: bigint }[];
  entries: Map<string, EntryMessage>;
}

/**
 * The messages of segment entries a process's cursors leased lately, per topic: of every entry in the topic's
 * stretches of seqs. At fan-out every cursor of a topic leases every entry, mostly in a later lease call than the
 * first cursor's; told the stretches, the lease returns those entries with their event ids alone, so each event is
 * read, sent and built about once per process, not once per cursor (migration 047).
 *
 * A lease in flight resolves its entries from the maps it was sent with, so a map is only ever added to: one that
 * is trimmed is replaced. An event, so its message, never changes.
 */
export class HeldEntries {
  /** Least recently leased first. */
  private readonly topics = new Map<string, HeldTopic>();

  /**
   * At most `perTopic` messages of a topic, `inAll` of all (the least recently leased topics go first), and
   * `stretches` apart per topic (the lowest go first).
   */
  constructor(private readonly limits = { perTopic: 4096, inAll: 16_384, stretches: 16 }) {}

  /**
   * The stretches to tell a lease, with their messages as they are now: of these topics, or all. Only these topics'
   * entries among the lease's rows are held.
   */
  windows(of: ReadonlySet<string> | null = null): HeldWindows {
    const sent: HeldWindows = { topics: [], lo: [], hi: [], messages: new Map(), holder: this, of };
    for (const [topic, held] of this.topics) {
      if (of && !of.has(topic)) continue;
      for (const { lo, hi } of held.stretches) {
        sent.topics.push(topic);
        sent.lo.push(String(lo));
        sent.hi.push(String(hi));
      }
      sent.messages.set(topic, held.entries);
    }
    return sent;
  }

  get(topic: string, eventId: string): EntryMessage | undefined {
    return this.topics.get(topic)?.entries.get(eventId);
  }

  /** A range (from, to] of the topic that a lease returned, with every entry of it. */
  hold(topic: string, from: bigint, to: bigint, entries: Map<string, EntryMessage>): void {
    const held = this.topics.get(topic) ?? { stretches: [], entries: new Map() };
    for (const [id, entry] of entries) if (!held.entries.has(id)) held.entries.set(id, entry);
    // The range joins the stretches it meets or overlaps.
    let lo = from;
    let hi = to;
    const apart = held.stretches.filter((s) => {
      if (s.hi < lo || s.lo > hi) return true;
      if (s.lo < lo) lo = s.lo;
      if (s.hi > hi) hi = s.hi;
      return false;
    });
    apart.push({ lo, hi });
    apart.sort((a, b) => (a.lo < b.lo ? -1 : 1));
    held.stretches = apart.slice(-this.limits.stretches);
    // Most recently leased last.
    this.topics.delete(topic);
    this.topics.set(topic, held);
    const { perTopic, inAll } = this.limits;
    if (held.entries.size > perTopic) {
      // The lowest seqs go, a quarter at a time; the stretches start past the last of them.
      const kept = [...held.entries].sort(([, a], [, b]) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
      const cut = kept.length - Math.floor((perTopic * 3) / 4);
      const last = kept[cut - 1]![1].seq;
      held.entries = new Map(kept.slice(cut));
      held.stretches = held.stretches.filter((s) => s.hi > last).map((s) => (s.lo < last ? { lo: last, hi: s.hi } : s));
    }
    let all = 0;
    for (const h of this.topics.values()) all += h.entries.size;
    for (const [name, h] of this.topics) {
      if (all <= inAll || name === topic) break;
      this.topics.delete(name);
      all -= h.entries.size;
    }
  }
}

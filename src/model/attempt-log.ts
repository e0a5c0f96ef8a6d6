import { StringDecoder } from 'node:string_decoder';

/*
 * A delivery's attempt log (rowcast.deliveries.attempt_log, the last ATTEMPT_LOG_SIZE entries): one entry per
 * attempt, with what an HTTP attempt sent and got back (Hasura's invocation logs), and history events — a redrive,
 * a resend, a replay — that start a new series of attempts. It lives in the delivery's row, so it is written by the
 * statement that records the attempt's result and deleted with the delivery by retention.
 */

/** Entries kept per delivery; the oldest goes first. */
export const ATTEMPT_LOG_SIZE = 20;
/** How much of a response body an attempt keeps. */
export const RESPONSE_BODY_LIMIT = 1024;
/** Response headers kept per attempt, and the length kept of each value: a misbehaving endpoint cannot bloat the row. */
const MAX_RESPONSE_HEADERS = 50;
const MAX_HEADER_VALUE = 512;

export const REDACTED = '[redacted]';

/** What one HTTP attempt sent (secrets and signatures redacted) and what came back, if anything did. */
export interface AttemptExchange {
  request: { headers: Record<string, string> };
  /** Absent when no response came (timeout, connection refused, reset). */
  response?: { status: number; headers: Record<string, string>; body: string; bodyTruncated: boolean };
}

/** An attempt, or an event that started a new series of attempts (attempt null). */
export interface AttemptLogEntry {
  attempt: number | null;
  at: string;
  outcome: 'delivered' | 'failed' | 'dead' | HistoryEvent;
  status: number | null;
  error: string | null;
  durationMs: number | null;
  request?: AttemptExchange['request'];
  response?: AttemptExchange['response'];
}

/** redriven: a dead delivery put back (redrive); resent: a delivered or dead one sent again (resend); replayed: by a capture replay. */
export type HistoryEvent = 'redriven' | 'resent' | 'replayed';

/** Header names that carry credentials or signatures, whatever their value. */
const SECRET_NAME = /auth|token|secret|signature|passw|api[-_]?key|session|cookie|credential/i;

/**
 * The headers as kept in the log: values of credential and signature headers, and of `secretHeaders` (configured
 * from the environment, e.g. "${API_KEY}"), become "[redacted]"; an Authorization header keeps its scheme.
 */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
  secretHeaders: ReadonlySet<string> = new Set(),
): Record<string, string> {
  const kept: Record<string, string> = {};
  let n = 0;
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    if (++n > MAX_RESPONSE_HEADERS) break;
    const value = Array.isArray(raw) ? raw.join(', ') : String(raw);
    const lower = name.toLowerCase();
    if (SECRET_NAME.test(lower) || secretHeaders.has(lower)) {
      const scheme = /authorization$/.test(lower) ? /^(\S+)\s/.exec(value)?.[1] : undefined;
      kept[lower] = scheme ? `${scheme} ${REDACTED}` : REDACTED;
    } else kept[lower] = value.length > MAX_HEADER_VALUE ? `${value.slice(0, MAX_HEADER_VALUE)}…` : value;
  }
  return kept;
}

/**
 * The first RESPONSE_BODY_LIMIT bytes of a response body, fed chunk by chunk as they arrive (the rest is read and
 * dropped by the caller, so the connection is reused): whole UTF-8 characters only.
 */
export class BodyStart {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  add(chunk: Buffer): void {
    if (this.size > RESPONSE_BODY_LIMIT) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  result(): { body: string; bodyTruncated: boolean } {
    const bytes = Buffer.concat(this.chunks, this.size);
    // StringDecoder.write keeps a character cut at the limit back instead of writing a replacement character.
    // jsonb cannot hold NUL characters (a binary body would fail the whole batch of results).
    const text = new StringDecoder('utf8').write(bytes.subarray(0, RESPONSE_BODY_LIMIT)).replaceAll('\u0000', '\ufffd');
    return { body: text, bodyTruncated: this.size > RESPONSE_BODY_LIMIT };
  }
}

/**
 * A result's log entry as the statement that records it takes it: JSON of a one-element array. Built here rather
 * than in SQL, where merging it with the exchange (jsonb ||) cost more than the rest of the statement.
 */
export function attemptLogEntry(r: {
  attempt: number;
  state: 'done' | 'pending' | 'dead';
  status?: number;
  error?: string;
  durationMs?: number;
  exchange?: AttemptExchange;
}): string {
  const entry: AttemptLogEntry = {
    attempt: r.attempt,
    at: new Date().toISOString(),
    outcome: r.state === 'done' ? 'delivered' : r.state === 'dead' ? 'dead' : 'failed',
    status: r.status ?? null,
    error: r.error ?? null,
    durationMs: r.durationMs === undefined ? null : Math.round(r.durationMs),
    ...r.exchange,
  };
  return JSON.stringify([entry]);
}

/**
 * SQL: `row`'s attempt log with `entry` (a jsonb array expression) appended, the oldest entry dropped at
 * ATTEMPT_LOG_SIZE. A delivery delivered at its first attempt without an exchange to keep has no log (NULL; the hot
 * path of non-HTTP sinks writes none): before anything is appended to it, that attempt is written out from the row.
 */
export function appendToAttemptLog(row: string, entry: string): string {
  const existing = `coalesce(${row}.attempt_log, CASE WHEN ${row}.state = 'done' THEN jsonb_build_array(jsonb_build_object(
      'attempt', ${row}.attempts, 'at', coalesce(${row}.delivered_at, ${row}.updated_at), 'outcome', 'delivered', 'status', ${row}.last_status,
      'error', NULL, 'durationMs', NULL)) ELSE '[]'::jsonb END)`;
  return `(CASE WHEN jsonb_array_length(${existing}) >= ${ATTEMPT_LOG_SIZE} THEN ${existing} - 0 ELSE ${existing} END || ${entry})`;
}

/** SQL: `row`'s attempt log with a history event appended (in an UPDATE's SET: `attempt_log = …`). */
export function historyEventSql(row: string, event: HistoryEvent): string {
  return appendToAttemptLog(
    row,
    `jsonb_build_array(jsonb_build_object('attempt', NULL, 'at', now(), 'outcome', '${event}', 'status', NULL, 'error', NULL, 'durationMs', NULL))`,
  );
}

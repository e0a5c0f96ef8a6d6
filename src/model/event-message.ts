import { hash } from 'node:crypto';

/**
 * The message routing makes of a captured event, built here for a segment entry the lease returned as its event's
 * columns (migration 043): the same id as rowcast.derived_uuid, and the same body, byte for byte, as
 * rowcast.event_message_body's json_build_object — a failed entry's message row is made in SQL, and its retries
 * send what its first attempt sent (test/e2e/log-segments.test.ts holds the two equal).
 */

/** An event as the lease returns it: every column as its text (jsonb as jsonb's text), `changed` as an array. */
export interface LeasedEvent {
  id: string;
  op: string;
  /** Another source's own (MySQL: kind, server, database, table, binlog position); NULL for PostgreSQL's. */
  source: string | null;
  capture: string;
  schema: string;
  table: string;
  txid: string;
  key: string | null;
  before: string | null;
  after: string | null;
  changed: (string | null)[] | null;
  /** UTC, microseconds: YYYY-MM-DDTHH:MM:SS.ffffffZ. */
  capturedAt: string;
  trace: string | null;
}

/** rowcast.derived_uuid(installation, name): SHA-256 of `installation/name`, 32 hex digits, variant 8 and version 8. */
export function derivedUuid(installation: string, name: string): string {
  return uuidOfDigest(hash('sha256', `${installation}/${name}`, 'hex'));
}

/** A UUID of a SHA-256 digest's first 32 hex digits, variant 8 and version 8 (as rowcast.derived_uuid). */
export function uuidOfDigest(h: string): string {
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface EventMessage {
  id: string;
  body: string;
  /** rowcast.event_message_attributes, keys in jsonb's order (as a message row's attributes are read back). */
  attributes: { op: string; table: string; schema: string; capture: string };
}

// json_build_object's text: `"key" : value` pairs joined by `, `; a text value as a JSON string (JSON.stringify
// escapes as PostgreSQL's escape_json does), jsonb as its own text, a text[] as array_to_json's `["a",null]`.
const str = (s: string | null): string => (s === null ? 'null' : JSON.stringify(s));
const json = (s: string | null): string => s ?? 'null';

export function eventMessage(installation: string, e: LeasedEvent): EventMessage {
  const source =
    e.source ??
    `{"capture" : ${str(e.capture)}, "schema" : ${str(e.schema)}, "table" : ${str(e.table)}, "txid" : ${str(e.txid)}}`;
  return {
    id: derivedUuid(installation, `message/${e.id}`),
    body:
      `{"id" : ${str(e.id)}, "op" : ${str(e.op)}, "source" : ${source}, "key" : ${json(e.key)}, ` +
      `"before" : ${json(e.before)}, "after" : ${json(e.after)}, ` +
      `"changed" : ${e.changed === null ? 'null' : JSON.stringify(e.changed)}, ` +
      `"captured_at" : ${str(e.capturedAt)}, "trace" : ${str(e.trace)}}`,
    attributes: { op: e.op, table: e.table, schema: e.schema, capture: e.capture },
  };
}

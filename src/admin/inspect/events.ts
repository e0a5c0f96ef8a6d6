import type { Pool } from '../../store/pool.js';
import { decodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

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
  routed: boolean;
  /** When its message or invocation was made, while retention keeps that. */
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
    `SELECT e.id::text, capture, schema_name, table_name, op, topic, function, key, before, after, changed, txid::text, trace, captured_at, r.routed,
            CASE WHEN r.routed THEN coalesce(e.routed_at,
              (SELECT m.created_at FROM rowcast.messages m WHERE m.id = rowcast.derived_uuid(i.id, 'message/' || e.id)),
              (SELECT g.created_at FROM rowcast.log_segments g WHERE g.events @> e.id AND e.id = ANY (g.event_ids)),
              (SELECT v.created_at FROM rowcast.invocations v WHERE v.id = rowcast.derived_uuid(i.id, 'invocation/' || e.id))) END AS routed_at
       FROM rowcast.events e CROSS JOIN rowcast.installation i CROSS JOIN LATERAL (SELECT rowcast.event_routed(e) AS routed) r
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
      routed: r.routed,
      routedAt: r.routed_at,
    }),
    (r) => r.id,
    'event',
  );
}

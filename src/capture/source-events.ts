import type { Operation } from '../config/capture-schema.js';
import { eventsJson } from './postgres/text-values.js';

/** One rowcast event of a source's change (MySQL or PostgreSQL), as written to rowcast.events. */
export interface SourceEventRow {
  capture: string;
  topic: string | null;
  function: string | null;
  op: Operation | 'READ';
  schema_name: string;
  table_name: string;
  key: unknown;
  before: unknown;
  after: unknown;
  changed: string[] | null;
  source: unknown;
}

/** Inserts events built in JavaScript, in their order (event ids follow it). */
export async function insertSourceEvents(
  store: { query(sql: string, values?: unknown[]): Promise<unknown> },
  events: SourceEventRow[],
): Promise<void> {
  if (!events.length) return;
  await store.query(
    `INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, source)
     SELECT x.capture, x.topic, x.function, x.op, x.schema_name, x.table_name, x.key, x.before, x.after, x.changed, x.source
       FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(e, ord),
            jsonb_to_record(a.e) AS x(capture text, topic text, function text, op text, schema_name text, table_name text,
                                      key jsonb, before jsonb, after jsonb, changed text[], source jsonb)
      ORDER BY a.ord`,
    // Exact numbers inside PostgreSQL composites as bare JSON numbers (text-values.ts).
    [eventsJson(events)],
  );
}

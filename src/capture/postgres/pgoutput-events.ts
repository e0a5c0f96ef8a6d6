import type { Pgoutput } from 'pg-logical-replication';
import type { CaptureConfig, Operation } from '../../config/capture-schema.js';
import type { SourceEventRow } from '../source-events.js';
import type { SourceTypes } from './source-types.js';
import { pgTextValue, type TypeLookup } from './text-values.js';

/**
 * A PostgreSQL source's decoded pgoutput changes (and backfill messages) as rowcast events, in the store's shape:
 * what postgres-reader.ts collects per open transaction before it writes or stages them.
 */

/** A capture of the source as the reader loaded it. */
export interface SourceCapture {
  name: string;
  capture: CaptureConfig;
  /** The table's primary key on the source, as apply read it. */
  key: string[];
}

/**
 * The transaction being decoded: its events not yet written, and how many went to rowcast.source_staging already
 * (a transaction larger than a chunk is staged chunk by chunk and promoted at its commit, migration 029).
 */
export interface OpenTransaction {
  events: SourceEventRow[];
  /** Characters of the rows' values held in `events`. */
  chars: number;
  staged: number;
  /** Written before a restart: its changes are not collected. */
  skip: boolean;
  commitLsn: string;
}

/** The events of one decoded change, for every capture of its table that takes its operation. */
export function collectChange(
  server: string,
  tx: OpenTransaction | null,
  captures: Map<string, SourceCapture[]>,
  database: string | null,
  types: TypeLookup,
  relation: Pgoutput.MessageRelation,
  op: Operation,
  oldRow: Record<string, unknown> | null,
  newRow: Record<string, unknown> | null,
): void {
  if (!tx || tx.skip) return;
  const list = captures.get(`${relation.schema}.${relation.name}`);
  if (!list) return;
  const before = oldRow && rowValues(relation, oldRow, types);
  const after = newRow && rowValues(relation, newRow, types);
  const chars = textChars(oldRow) + textChars(newRow);
  for (const c of list) {
    if (!c.capture.operations.includes(op)) continue;
    tx.chars += chars;
    tx.events.push(
      sourceEvent(
        c,
        op,
        before,
        after,
        {
          capture: c.name,
          kind: 'postgres',
          server,
          database,
          schema: relation.schema,
          table: relation.name,
          position: { lsn: tx.commitLsn },
        },
        relation.schema,
        relation.name,
      ),
    );
  }
}

/**
 * A backfill batch (backfill-source.ts), a logical message of its transaction on the source: its rows as
 * PostgreSQL's text with their type oids, converted as a change's values are, one READ event each.
 */
export async function collectBackfill(
  server: string,
  tx: OpenTransaction | null,
  captures: Map<string, SourceCapture[]>,
  database: string | null,
  types: SourceTypes,
  content: Uint8Array,
): Promise<void> {
  if (!tx || tx.skip) return;
  const batch = JSON.parse(Buffer.from(content).toString('utf8')) as {
    capture: string;
    columns: string[];
    types: number[];
    rows: (string | null)[][];
  };
  await types.learn(batch.types);
  for (const [table, list] of captures) {
    const c = list.find((x) => x.name === batch.capture);
    if (!c) continue;
    const dot = table.indexOf('.');
    const [schema, name] = [table.slice(0, dot), table.slice(dot + 1)];
    const source = {
      capture: c.name,
      kind: 'postgres',
      server,
      database,
      schema,
      table: name,
      position: { lsn: tx.commitLsn },
    };
    for (const row of batch.rows) {
      const after = Object.fromEntries(
        batch.columns.map((column, i) => [column, pgTextValue(row[i] ?? null, batch.types[i]!, types.lookup)]),
      );
      tx.events.push(sourceEvent(c, 'READ', null, after, source, schema, name));
    }
    return;
  }
}

/** A decoded row as JSON values (text-values.ts); an unchanged large value the log did not repeat is left out. */
function rowValues(
  relation: Pgoutput.MessageRelation,
  row: Record<string, unknown>,
  types: TypeLookup,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const column of relation.columns) {
    const value = row[column.name];
    if (value === undefined) continue;
    out[column.name] = pgTextValue(value as string | null, column.typeOid, types);
  }
  return out;
}

/** Characters of a decoded row's text values: what holding it costs, roughly. */
function textChars(row: Record<string, unknown> | null): number {
  let n = 0;
  if (row) for (const v of Object.values(row)) if (typeof v === 'string') n += v.length;
  return n;
}

/** Only some columns of a row (a capture's `columns`), in that order. */
const pick = (row: Record<string, unknown>, columns?: string[]) =>
  columns ? Object.fromEntries(columns.filter((c) => c in row).map((c) => [c, row[c]])) : row;

/**
 * One event of a source's change in the store's shape (key, before/after per payload, changed columns); also of
 * a backfill's row (op READ: `after` only).
 */
function sourceEvent(
  c: SourceCapture,
  op: Operation | 'READ',
  before: Record<string, unknown> | null,
  after: Record<string, unknown> | null,
  source: unknown,
  schema: string,
  table: string,
): SourceEventRow {
  const { capture } = c;
  const image = after ?? before;
  const key =
    image && c.key.length && c.key.every((k) => k in image)
      ? Object.fromEntries(c.key.map((k) => [k, image[k]]))
      : null;
  const e: SourceEventRow = {
    capture: c.name,
    topic: capture.topic ?? null,
    function: capture.function ?? null,
    op,
    schema_name: schema,
    table_name: table,
    key,
    before: null,
    after: null,
    changed: null,
    source,
  };
  if (!image) return e; // TRUNCATE: no rows
  if (capture.payload === 'keys') {
    // Without a primary key the whole row is its only identity (as for the store's captures).
    e.key = key ?? image;
  } else if (capture.payload === 'row') {
    if (op === 'DELETE') e.before = pick(before!, capture.columns);
    else e.after = pick(after!, capture.columns);
  } else {
    const o = before && pick(before, capture.columns);
    const n = after && pick(after, capture.columns);
    e.before = o;
    e.after = n;
    if (o && n) e.changed = Object.keys(n).filter((k) => JSON.stringify(n[k]) !== JSON.stringify(o[k]));
  }
  return e;
}

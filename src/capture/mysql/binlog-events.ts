import type { CaptureConfig, Operation } from '../../config/capture-schema.js';
import type { SourceEventRow } from '../source-events.js';
import { type BinlogPosition, type MysqlTableInfo, OUTBOX_TABLE } from './mysql-source.js';
import { jsonRow, type MappedColumn, tableOfMap } from './row-values.js';

/**
 * A MySQL source's binlog rows events as rowcast events: what mysql-reader.ts keeps of each committed
 * transaction while it reads, and the events it writes for them (converted with the column types their table map gives).
 */

/** A capture of the source as the reader loaded it. */
export interface MysqlCapture {
  name: string;
  capture: CaptureConfig;
}

/** One rows event of a captured table, as read (converted when written: see Committed.ddl). */
export interface RawChange {
  /** writerows, updaterows, deleterows; or readrows: a backfill batch's rows (copied through the capture's backfill table). */
  kind: string;
  /** readrows: the capture whose backfill it is. */
  capture?: string;
  database: string;
  table: string;
  rows: Record<string, unknown>[];
  /** The columns as the rows event's table map describes them: the types the rows were written with. */
  columns?: MappedColumn[];
}

/**
 * A committed transaction read from the binlog: its captured changes, its lambda_async calls, the position after
 * it, and its own (GTID, end of its commit). A DDL statement is one too (`ddl`): the column types of the rows after
 * it are read again before those rows are converted.
 */
export interface Committed {
  changes: RawChange[];
  calls: { arn: string; payload: string }[];
  position: BinlogPosition;
  at?: BinlogPosition;
  ddl?: boolean;
}

export const emptyTransaction = (): Committed => ({ changes: [], calls: [], position: {} });

/** Keeps one rows event of a captured table (or the lambda_async calls of an outbox). */
export function collectRows(
  tx: Committed,
  kind: string,
  event: Record<string, unknown>,
  captures: Map<string, MysqlCapture[]>,
  copies: Map<string, { capture: string; table: string }>,
): void {
  const map = (
    event.tableMap as Record<number, { parentSchema: string; tableName: string; columnSchemas?: MappedColumn[] }>
  )[event.tableId as number];
  if (!map) return;
  const rows = event.rows as Record<string, unknown>[];
  if (map.tableName === OUTBOX_TABLE) {
    // lambda_async inserts and deletes its row in one go: the insert is the call.
    if (kind === 'writerows')
      for (const r of rows) tx.calls.push({ arn: String(r.function_arn), payload: String(r.payload) });
    return;
  }
  const copy = copies.get(`${map.parentSchema}.${map.tableName}`);
  if (copy) {
    // A backfill batch copies its rows in and deletes them again: the copy's inserts are the rows.
    if (kind === 'writerows')
      tx.changes.push({
        kind: 'readrows',
        capture: copy.capture,
        database: map.parentSchema,
        table: copy.table,
        rows,
        columns: map.columnSchemas,
      });
    return;
  }
  if (captures.has(`${map.parentSchema}.${map.tableName}`))
    tx.changes.push({ kind, database: map.parentSchema, table: map.tableName, rows, columns: map.columnSchemas });
}

/** The events of a transaction's changes, for every capture of their tables. */
export function binlogEvents(
  server: string,
  tx: Committed,
  captures: Map<string, MysqlCapture[]>,
  tables: Map<string, MysqlTableInfo>,
): SourceEventRow[] {
  const events: SourceEventRow[] = [];
  for (const { kind, capture: backfilled, database, table: tableName, rows, columns } of tx.changes) {
    // Converted by the types the rows were written with (their table map), not the table's types now.
    const table = tableOfMap(columns, tables.get(`${database}.${tableName}`));
    const op: Operation | 'READ' =
      kind === 'readrows' ? 'READ' : kind === 'writerows' ? 'INSERT' : kind === 'updaterows' ? 'UPDATE' : 'DELETE';
    for (const { name, capture } of captures.get(`${database}.${tableName}`) ?? []) {
      if (op === 'READ' ? name !== backfilled : !capture.operations.includes(op)) continue;
      for (const row of rows) {
        const before = op === 'UPDATE' ? (row.before as Record<string, unknown>) : op === 'DELETE' ? row : null;
        const after =
          op === 'UPDATE' ? (row.after as Record<string, unknown>) : op === 'INSERT' || op === 'READ' ? row : null;
        const image = (after ?? before)!;
        const pk =
          table?.key.length && table.key.every((c) => c in image)
            ? jsonRow(Object.fromEntries(table.key.map((c) => [c, image[c]])), table)
            : null;
        const e: SourceEventRow = {
          capture: name,
          topic: capture.topic ?? null,
          function: capture.function ?? null,
          op,
          schema_name: database,
          table_name: tableName,
          key: pk,
          before: null,
          after: null,
          changed: null,
          source: {
            capture: name,
            kind: 'mysql',
            server,
            database,
            schema: database,
            table: tableName,
            position: tx.at,
          },
        };
        if (capture.payload === 'keys') {
          // Without a primary key the whole row is its only identity (as for the store's captures).
          e.key = pk ?? jsonRow(image, table);
        } else if (capture.payload === 'row') {
          if (op === 'DELETE') e.before = jsonRow(before!, table, capture.columns);
          else e.after = jsonRow(after!, table, capture.columns);
        } else {
          const o = before && jsonRow(before, table, capture.columns);
          const n = after && jsonRow(after, table, capture.columns);
          e.before = o;
          e.after = n;
          if (o && n) e.changed = Object.keys(n).filter((c) => JSON.stringify(n[c]) !== JSON.stringify(o[c]));
        }
        events.push(e);
      }
    }
  }
  return events;
}

import type { MysqlTableInfo } from './mysql-source.js';

const BINARY = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

/**
 * One value of a binlog row image as JSON (docs/sources.md, "Type mapping"), as the store's captures write
 * PostgreSQL's: exact numbers (BIGINT, unsigned or not, DECIMAL) as strings; DATETIME as "YYYY-MM-DDTHH:MM:SS[.f]"
 * (no zone, like timestamp); TIMESTAMP in UTC with "+00:00" (like timestamptz); JSON parsed; BLOB/BINARY as base64;
 * BIT as a string of its bits; SET as an array of its members; ENUM, TIME, DATE, text as strings.
 */
export function jsonValue(
  value: unknown,
  column: { type: string; columnType: string; json: boolean } | undefined,
): unknown {
  if (value === null || value === undefined) return null;
  const type = column?.type;
  if (Buffer.isBuffer(value)) {
    if (type === 'bit') {
      const bits = [...value].map((b) => b.toString(2).padStart(8, '0')).join('');
      const width = Number(/bit\((\d+)\)/.exec(column!.columnType)?.[1] ?? bits.length);
      return bits.slice(-width).padStart(width, '0');
    }
    return value.toString('base64');
  }
  if (column?.json && typeof value === 'string') {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  switch (type) {
    case 'bigint':
    case 'decimal':
      return String(value);
    case 'datetime':
      return typeof value === 'string' && !value.startsWith('0000') ? value.replace(' ', 'T') : value;
    case 'timestamp':
      return typeof value === 'string' && !value.startsWith('0000') ? `${value.replace(' ', 'T')}+00:00` : value;
    case 'set':
      return typeof value === 'string' ? (value === '' ? [] : value.split(',')) : value;
    default:
      if (type && BINARY.has(type) && typeof value === 'string') return Buffer.from(value, 'binary').toString('base64');
      return typeof value === 'bigint' ? value.toString() : value;
  }
}

/** A binlog row image as a JSON object (all its columns, or only `columns`). */
export function jsonRow(
  row: Record<string, unknown>,
  table: MysqlTableInfo | undefined,
  columns?: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(row)) {
    if (columns && !columns.includes(name)) continue;
    out[name] = jsonValue(value, table?.columns.get(name));
  }
  return out;
}

/** A column as a table map event describes it (zongji's columnSchemas: INFORMATION_SCHEMA.COLUMNS' shape). */
export interface MappedColumn {
  COLUMN_NAME: string;
  COLUMN_TYPE?: string;
  DATA_TYPE?: string;
}

const mapped = new WeakMap<MappedColumn[], MysqlTableInfo>();

/**
 * The table as a rows event's own table map describes it: the column types its row images were written with
 * (binlog_row_metadata = FULL), not the table's definition when rowcast reads them — a row written before an
 * ALTER TABLE and read after it keeps its own types. What the binlog does not carry comes from the table now:
 * the primary key, and MariaDB's JSON (a LONGTEXT with a json_valid() check) while the column is still such a text.
 */
export function tableOfMap(
  columns: MappedColumn[] | undefined,
  now: MysqlTableInfo | undefined,
): MysqlTableInfo | undefined {
  if (!columns?.length) return now;
  let table = mapped.get(columns);
  if (!table) {
    table = { columns: new Map(), key: now?.key ?? [] };
    for (const c of columns) {
      const columnType = String(c.COLUMN_TYPE ?? '').toLowerCase();
      const type = String(c.DATA_TYPE ?? /^[a-z]+/.exec(columnType)?.[0] ?? '').toLowerCase();
      const current = now?.columns.get(c.COLUMN_NAME);
      table.columns.set(c.COLUMN_NAME, {
        type,
        columnType,
        json: type === 'json' || (!!current?.json && current.type === type),
      });
    }
    mapped.set(columns, table);
  }
  return table;
}

import type { RowcastConfig } from '../config/schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import type { PoolClient } from '../store/pool.js';

export interface ColumnInfo {
  name: string;
  /** format_type() of the column, e.g. "bigint", "numeric(12,2)". */
  type: string;
  /** int8 and numeric (and arrays of them): sent as strings so no consumer rounds them. */
  exactNumber: boolean;
  array: boolean;
}

export interface TableInfo {
  oid: number;
  schema: string;
  name: string;
  /** r = table, p = partitioned table. */
  kind: 'r' | 'p';
  columns: ColumnInfo[];
  /** Primary key columns in key order; empty when the table has none. */
  primaryKey: string[];
}

/** Reads what capture DDL needs to know about a table; null when it does not exist or is not visible. */
export async function readTableInfo(client: PoolClient, schema: string, name: string): Promise<TableInfo | null> {
  const rel = await client.query<{ oid: number; relkind: string }>(
    `SELECT c.oid::int AS oid, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const row = rel.rows[0];
  if (!row || (row.relkind !== 'r' && row.relkind !== 'p')) return null;
  const cols = await client.query<{ name: string; type: string; base: string; array: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            COALESCE(et.typname, t.typname)::text AS base, t.typelem <> 0 AND t.typlen = -1 AS array
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typlen = -1
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [row.oid],
  );
  const pk = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`,
    [row.oid],
  );
  return {
    oid: row.oid,
    schema,
    name,
    kind: row.relkind as 'r' | 'p',
    columns: cols.rows.map((c) => ({
      name: c.name,
      type: c.type,
      exactNumber: c.base === 'int8' || c.base === 'numeric',
      array: c.array,
    })),
    primaryKey: pk.rows.map((r) => r.name),
  };
}

/** Splits "schema.table" / "table" / { schema, name } into its parts. */
export function tableName(
  table: RowcastConfig['captures'][string]['table'],
  where: string,
): { schema: string; name: string } {
  if (typeof table === 'object') return table;
  const parts = table.split('.');
  if (parts.length === 1) return { schema: 'public', name: parts[0]! };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], name: parts[1] };
  throw new RowcastError(
    ErrorCodes.CONFIG_INVALID,
    `${where}: "${table}" is not "table" or "schema.table"; for names that contain dots write { schema: "…", name: "…" }.`,
  );
}

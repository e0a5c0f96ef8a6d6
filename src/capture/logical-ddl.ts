import type { CaptureConfig } from '../config/schema.js';
import { ident, literal } from '../store/sql.js';
import type { TableInfo } from './table-info.js';
import { type CaptureDdl, captureFunctionName, statementBranch } from './trigger-ddl.js';

/** The publication that lists the tables of every logical capture (one per database). */
export const PUBLICATION = 'rowcast';

/** Arguments of a logical capture's function: one operation, and that many decoded rows in commit order. */
export const LOGICAL_ARGS = '(op text, old_rows jsonb[], new_rows jsonb[], xids bigint[])';

/**
 * A logical capture has no trigger: the reader (logical-reader.ts) decodes committed changes from the
 * write-ahead log and calls this function with a run of changes of one operation, each row as PostgreSQL's own
 * text values in a jsonb object. The function turns them back into rows of the table's type
 * (jsonb_populate_record feeds each text to the column type's input function) and writes the very events a
 * trigger would, with one INSERT … SELECT: the statement-level builders, reading `new` and `old` from the decoded
 * rows instead of transition tables, so `when` conditions and payloads read exactly as for triggers. (Set-based,
 * it costs about half of calling a row-level function once per change.)
 */
export function logicalCaptureDdl(name: string, capture: CaptureConfig, table: TableInfo): CaptureDdl {
  const functionName = `${captureFunctionName(name)}_logical`;
  const fn = `rowcast.${ident(functionName)}`;
  const rows = { old: '$2', new: '$3', xids: '$4' };
  const branches = capture.operations.map((op, i) => {
    const insert = op === 'TRUNCATE' ? truncateEvents(name, capture, table) : statementBranch(op, name, capture, table, rows);
    return `  ${i === 0 ? 'IF' : 'ELSIF'} op = '${op}' THEN\n${insert}`;
  });
  const code = `
#variable_conflict use_column
BEGIN
${branches.join('\n')}
  END IF;
END
`;
  let tag = '$rowcast$';
  for (let i = 1; code.includes(tag); i++) tag = `$rowcast_${i}$`;
  const body = `CREATE OR REPLACE FUNCTION ${fn}${LOGICAL_ARGS} RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${tag}${code}${tag}`;
  // Only the reader (its role) calls it: nobody else may write events through it.
  return { functionName, triggers: [], install: [body, `REVOKE ALL ON FUNCTION ${fn}${LOGICAL_ARGS} FROM PUBLIC`] };
}

/** One event per decoded TRUNCATE (no rows; `xids` holds one entry per TRUNCATE). */
function truncateEvents(name: string, capture: CaptureConfig, table: TableInfo): string {
  const target = (v: string | undefined) => (v === undefined ? 'NULL' : literal(v));
  return `    INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, trace, txid)
    SELECT ${literal(name)}, ${target(capture.topic)}, ${target(capture.function)}, 'TRUNCATE', ${literal(table.schema)}, ${literal(table.name)}, NULL, NULL, NULL, NULL, NULL, rowcast.xid8_of(c.x)
      FROM unnest($4) WITH ORDINALITY AS c(x, ord) ORDER BY c.ord;`;
}

/** This database's logical-capture slot, if any: slot, active (a process streams it), lag (bytes of log it holds). */
export const CAPTURE_SLOT_SQL = `SELECT slot_name AS slot, active, COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::float8 AS lag
   FROM pg_replication_slots WHERE database = current_database() AND plugin = 'pgoutput' AND slot_name LIKE 'rowcast\\_%'`;

/** Whether a capture's events come from the write-ahead log rather than a trigger. */
export const isLogical = (capture: Pick<CaptureConfig, 'mode'>): boolean => capture.mode === 'logical';

/** A replication slot's name for a database: slot names are cluster-wide, lower-case, at most 63 bytes. */
export function slotName(database: string): string {
  let hash = 0x811c9dc5; // FNV-1a: two databases whose names clean up alike still get distinct slots
  for (const byte of Buffer.from(database)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  const clean = database.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40);
  return `rowcast_${clean}_${hash.toString(16).padStart(8, '0')}`;
}

/**
 * Drops the replication slots of a database (its streaming readers disconnected first), as DROP DATABASE
 * requires: for scratch databases of the tests and the benchmark. A released slot may stay active a moment.
 */
export async function dropDatabaseSlots(client: { query(sql: string, values?: unknown[]): Promise<unknown> }, database: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await client.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL', [database]);
    try {
      await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1', [database]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

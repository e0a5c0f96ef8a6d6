import type { CaptureConfig, Operation } from '../config/schema.js';
import { ident, qualified } from '../store/sql.js';
import type { TableInfo } from './table-info.js';
import { type CaptureDdl, captureFunctionName, type EventOrigin, insertEvent, rowBranch, whenFor } from './trigger-ddl.js';

/** The publication that lists the tables of every logical capture (one per database). */
export const PUBLICATION = 'rowcast';

/** Arguments of a logical capture's function, for DROP FUNCTION and the reader's calls. */
export const LOGICAL_ARGS = '(op text, old_row jsonb, new_row jsonb, writer_xid xid8)';

/** The decoded transaction's xid, and no trace context (it stayed in the writer's session). */
const DECODED: EventOrigin = { txid: 'writer_xid', trace: 'NULL' };

/**
 * A logical capture has no trigger: the reader (logical-reader.ts) decodes committed changes from the
 * write-ahead log and calls this function with each row as PostgreSQL's own text values in a jsonb object. The
 * function turns them back into a row of the table's type (jsonb_populate_record feeds each text to the column
 * type's input function) and writes the very event a row trigger would: the same builders, with the records
 * named NEW and OLD, so `when` conditions and payloads read exactly as for triggers.
 */
export function logicalCaptureDdl(name: string, capture: CaptureConfig, table: TableInfo): CaptureDdl {
  const functionName = `${captureFunctionName(name)}_logical`;
  const fn = `rowcast.${ident(functionName)}`;
  const rowType = qualified(table.schema, table.name);
  const rowOps = capture.operations.filter((op): op is Exclude<Operation, 'TRUNCATE'> => op !== 'TRUNCATE');
  const branches = rowOps.map((op) => {
    const when = whenFor(capture, op);
    const guard = when ? `    IF NOT COALESCE((${when}), false) THEN RETURN; END IF;\n` : '';
    return `  ${op === rowOps[0] ? 'IF' : 'ELSIF'} op = '${op}' THEN\n${guard}${rowBranch(op, name, capture, table, DECODED)}`;
  });
  if (capture.operations.includes('TRUNCATE')) {
    branches.push(`  ${branches.length ? 'ELSIF' : 'IF'} op = 'TRUNCATE' THEN\n${insertEvent('TRUNCATE', name, capture, table, 'NULL', 'NULL', 'NULL', 'NULL', DECODED)}`);
  }
  const code = `
DECLARE
  n jsonb;
  o jsonb;
  NEW ${rowType};
  OLD ${rowType};
BEGIN
  IF new_row IS NOT NULL THEN NEW := jsonb_populate_record(NULL::${rowType}, new_row); END IF;
  IF old_row IS NOT NULL THEN OLD := jsonb_populate_record(NULL::${rowType}, old_row); END IF;
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

import type { CaptureConfig } from '../config/capture-schema.js';
import { ident, literal } from '../store/sql.js';
import type { TableInfo } from './table-info.js';
import { type CaptureDdl, captureFunctionName, decodedBranch } from './trigger-ddl.js';

/** The publication that lists the tables of every logical capture (one per database). */
export const PUBLICATION = 'rowcast';

/** Arguments of a logical capture's function: one operation, and that many decoded rows in commit order. */
const LOGICAL_ARGS = '(op text, old_rows jsonb[], new_rows jsonb[], xids bigint[])';

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
    const insert =
      op === 'TRUNCATE' ? truncateEvents(name, capture, table) : decodedBranch(op, name, capture, table, rows);
    return `  ${i === 0 ? 'IF' : 'ELSIF'} op = '${op}' THEN\n${insert}`;
  });
  // A backfill's rows, which the reader finds in the log as messages of the backfill's transactions (backfill.ts).
  branches.push(`  ELSIF op = 'READ' THEN\n${decodedBranch('INSERT', name, capture, table, rows, 'READ')}`);
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
  const clean = database
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40);
  return `rowcast_${clean}_${hash.toString(16).padStart(8, '0')}`;
}

/** A connection or a pool: what the helpers below query through. */
interface Queryable {
  query(sql: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** What logical decoding needs of the server and of the role rowcast connects as, as problems naming the fix. */
export async function logicalDecodingProblems(db: Queryable): Promise<string[]> {
  const { rows } = await db.query(
    `SELECT current_setting('wal_level') AS wal_level, (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`,
  );
  const server = rows[0] as { wal_level: string; replication: boolean };
  const problems: string[] = [];
  if (server.wal_level !== 'logical') {
    problems.push(
      `captures: mode 'logical' reads PostgreSQL's write-ahead log, and this server has wal_level = ${server.wal_level}; set wal_level = logical (postgresql.conf or ALTER SYSTEM) and restart PostgreSQL, or use mode 'row'.`,
    );
  }
  if (!server.replication) {
    problems.push(
      `captures: mode 'logical' streams changes over a replication connection, and this database user lacks the REPLICATION attribute; ALTER ROLE … REPLICATION, or use mode 'row'.`,
    );
  }
  return problems;
}

/**
 * Drops replication slots — one by name (apply, once no logical capture is left), or all of a database (as DROP
 * DATABASE requires: the scratch databases of the tests and the benchmark) — after disconnecting whoever streams
 * them. A released slot stays active a moment, so dropping is retried for up to 5 s.
 */
export async function dropSlots(db: Queryable, which: { slot: string } | { database: string }): Promise<void> {
  const [where, value] = 'slot' in which ? ['slot_name = $1', which.slot] : ['database = $1', which.database];
  for (let attempt = 1; ; attempt++) {
    await db.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE ${where} AND active_pid IS NOT NULL`,
      [value],
    );
    try {
      await db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE ${where}`, [value]);
      return;
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

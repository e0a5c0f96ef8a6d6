import type { CaptureConfig, Operation } from '../config/schema.js';
import { ident, literal, qualified } from '../store/sql.js';
import type { ColumnInfo, TableInfo } from './table-info.js';

export interface CaptureDdl {
  functionName: string;
  triggers: string[];
  /** Statements that install (or replace) the capture, in order. */
  install: string[];
}

export const captureFunctionName = (capture: string): string => `capture_${capture}`;
export const captureTriggerName = (capture: string, op: Operation): string => `rowcast_${capture}_${op.toLowerCase()}`;

/** Statements that remove what captureDdl installed; tableExists=false skips the triggers (they went with the table). */
export function dropCaptureDdl(installed: { schema: string; table: string; functionName: string; triggers: string[] }, tableExists: boolean): string[] {
  const drops = tableExists ? installed.triggers.map((t) => `DROP TRIGGER IF EXISTS ${ident(t)} ON ${qualified(installed.schema, installed.table)}`) : [];
  return [...drops, `DROP FUNCTION IF EXISTS rowcast.${ident(installed.functionName)}()`];
}

/**
 * Generates the trigger function and triggers of one capture. The function writes one row into rowcast.events
 * in the writer's own transaction and wakes a sleeping dispatcher; every name in it is quoted.
 */
export function captureDdl(name: string, capture: CaptureConfig, table: TableInfo): CaptureDdl {
  const functionName = captureFunctionName(name);
  const fn = `rowcast.${ident(functionName)}`;
  const target = qualified(table.schema, table.name);
  const rowOps = capture.operations.filter((op) => op !== 'TRUNCATE');

  const branches = rowOps.map((op) => `  ${op === rowOps[0] ? 'IF' : 'ELSIF'} TG_OP = '${op}' THEN\n${rowBranch(op, name, capture, table)}`);
  if (capture.operations.includes('TRUNCATE')) {
    branches.push(`  ${branches.length ? 'ELSIF' : 'IF'} TG_OP = 'TRUNCATE' THEN\n${insertEvent('TRUNCATE', name, capture, table, 'NULL', 'NULL', 'NULL', 'NULL')}`);
  }
  const code = `
DECLARE
  n jsonb;
  o jsonb;
BEGIN
${branches.join('\n')}
  END IF;
  -- Wake a sleeping dispatcher; under load none sleeps and no NOTIFY (a commit-serialising lock) is taken.
  IF EXISTS (SELECT 1 FROM rowcast.dispatchers WHERE sleeping) THEN
    PERFORM pg_notify('rowcast', '');
  END IF;
  RETURN NULL;
END
`;
  // Table and column names appear in the body as literals; a name containing the dollar-quote tag would end
  // the body early, so the tag is one that does not occur in it.
  let tag = '$rowcast$';
  for (let i = 1; code.includes(tag); i++) tag = `$rowcast_${i}$`;
  const body = `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${tag}${code}${tag}`;

  const triggers: string[] = [];
  const install = [body];
  for (const op of capture.operations) {
    const trigger = captureTriggerName(name, op);
    triggers.push(trigger);
    const when = whenFor(capture, op);
    install.push(`DROP TRIGGER IF EXISTS ${ident(trigger)} ON ${target}`);
    install.push(
      op === 'TRUNCATE'
        ? `CREATE TRIGGER ${ident(trigger)} AFTER TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`
        : `CREATE TRIGGER ${ident(trigger)} AFTER ${op} ON ${target} FOR EACH ROW${when ? ` WHEN (${when})` : ''} EXECUTE FUNCTION ${fn}()`,
    );
  }
  return { functionName, triggers, install };
}

function whenFor(capture: CaptureConfig, op: Operation): string | undefined {
  if (!capture.when || op === 'TRUNCATE') return undefined;
  if (typeof capture.when === 'string') return capture.when;
  return capture.when[op.toLowerCase() as 'insert' | 'update' | 'delete'];
}

function rowBranch(op: Exclude<Operation, 'TRUNCATE'>, name: string, capture: CaptureConfig, table: TableInfo): string {
  const record = op === 'DELETE' ? 'OLD' : 'NEW';
  const key = keyJson(record, table);
  const lines: string[] = [];
  let before = 'NULL';
  let after = 'NULL';
  let changed = 'NULL';
  if (capture.payload === 'keys') {
    // Without a primary key the whole row is the only identity there is (documented).
    return insertEvent(op, name, capture, table, key ?? rowJson(record, table, undefined), 'NULL', 'NULL', 'NULL');
  }
  if (capture.payload === 'row') {
    if (op === 'DELETE') before = rowJson('OLD', table, capture.columns);
    else after = rowJson('NEW', table, capture.columns);
  } else {
    if (op !== 'INSERT') {
      lines.push(`    o := ${rowJson('OLD', table, capture.columns)};`);
      before = 'o';
    }
    if (op !== 'DELETE') {
      lines.push(`    n := ${rowJson('NEW', table, capture.columns)};`);
      after = 'n';
    }
    if (op === 'UPDATE') changed = `ARRAY(SELECT e.k FROM jsonb_each(n) AS e(k, v) WHERE e.v IS DISTINCT FROM o -> e.k)`;
  }
  return [...lines, insertEvent(op, name, capture, table, key ?? 'NULL', before, after, changed)].join('\n');
}

function insertEvent(op: Operation, name: string, capture: CaptureConfig, table: TableInfo, key: string, before: string, after: string, changed: string): string {
  const target = (v: string | undefined) => (v === undefined ? 'NULL' : literal(v));
  return `    INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, trace)
    VALUES (${literal(name)}, ${target(capture.topic)}, ${target(capture.function)}, '${op}', ${literal(table.schema)}, ${literal(table.name)}, ${key}, ${before}, ${after}, ${changed}, NULLIF(current_setting('rowcast.traceparent', true), ''));`;
}

/** Exact numbers become strings; everything else keeps to_jsonb's mapping. */
function valueExpr(record: string, col: ColumnInfo): string {
  const ref = `${record}.${ident(col.name)}`;
  if (!col.exactNumber) return ref;
  return col.array ? `to_jsonb(${ref}::text[])` : `${ref}::text`;
}

/** jsonb_build_object takes at most 100 arguments, so wide column lists are built in chunks and concatenated. */
function buildObject(record: string, cols: ColumnInfo[]): string {
  const chunks: string[] = [];
  for (let i = 0; i < cols.length; i += 50) {
    chunks.push(`jsonb_build_object(${cols.slice(i, i + 50).map((c) => `${literal(c.name)}, ${valueExpr(record, c)}`).join(', ')})`);
  }
  return chunks.join(' || ') || `'{}'::jsonb`;
}

function rowJson(record: string, table: TableInfo, columns: string[] | undefined): string {
  if (columns) return buildObject(record, columns.map((c) => table.columns.find((tc) => tc.name === c)!));
  const exact = table.columns.filter((c) => c.exactNumber);
  // to_jsonb(NEW) follows columns added later without re-applying; only exact numbers need naming. They are read
  // from that jsonb (which keeps every digit, scale, NaN and ±Infinity), never as NEW."col": a column dropped
  // while the trigger is installed must not make the writer's statement fail ("record has no field"); a dropped
  // column's null is stripped, so it is simply absent. Arrays: the jsonb array's text as an array literal.
  if (!exact.length) return `to_jsonb(${record})`;
  const fromJson = exact.map((c) => `${literal(c.name)}, ${c.array ? `to_jsonb(translate(NULLIF(j -> ${literal(c.name)}, 'null')::text, '[]', '{}')::text[])` : `j ->> ${literal(c.name)}`}`);
  const chunks: string[] = [];
  for (let i = 0; i < fromJson.length; i += 50) chunks.push(`jsonb_build_object(${fromJson.slice(i, i + 50).join(', ')})`);
  return `(SELECT j || jsonb_strip_nulls(${chunks.join(' || ')}) FROM (SELECT to_jsonb(${record}) AS j) AS r)`;
}

function keyJson(record: string, table: TableInfo): string | undefined {
  if (!table.primaryKey.length) return undefined;
  return buildObject(record, table.primaryKey.map((c) => table.columns.find((tc) => tc.name === c)!));
}

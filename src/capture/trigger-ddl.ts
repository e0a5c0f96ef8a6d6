import type { CaptureConfig, Operation } from '../config/capture-schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import { ident, literal, qualified } from '../store/sql.js';
import type { TableInfo } from './table-info.js';

export interface CaptureDdl {
  functionName: string;
  triggers: string[];
  /** Statements that install (or replace) the capture, in order. */
  install: string[];
}

export const captureFunctionName = (capture: string): string => `capture_${capture}`;
export const captureTriggerName = (capture: string, op: Operation): string => `rowcast_${capture}_${op.toLowerCase()}`;

/** Statements that remove what captureDdl installed; tableExists=false skips the triggers (they went with the table). */
export function dropCaptureDdl(
  installed: { schema: string; table: string; functionName: string; triggers: string[] },
  tableExists: boolean,
): string[] {
  const drops = tableExists
    ? installed.triggers.map(
        (t) => `DROP TRIGGER IF EXISTS ${ident(t)} ON ${qualified(installed.schema, installed.table)}`,
      )
    : [];
  // By name alone (it is unique in schema rowcast): a trigger function takes no arguments, a logical capture's four.
  return [...drops, `DROP FUNCTION IF EXISTS rowcast.${ident(installed.functionName)}`];
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

  const perStatement = capture.mode === 'statement';
  const branch = perStatement ? statementBranch : rowBranch;
  const branches = rowOps.map(
    (op) => `  ${op === rowOps[0] ? 'IF' : 'ELSIF'} TG_OP = '${op}' THEN\n${branch(op, name, capture, table)}`,
  );
  if (capture.operations.includes('TRUNCATE')) {
    branches.push(
      `  ${branches.length ? 'ELSIF' : 'IF'} TG_OP = 'TRUNCATE' THEN\n${insertEvent('TRUNCATE', name, capture, table, 'NULL', 'NULL', 'NULL', 'NULL')}`,
    );
  }
  // Statement-level: the transition tables' rows are aliased new and old, so that a `when` written for row
  // triggers (NEW.total > 100) reads their columns rather than PL/pgSQL's (null) NEW and OLD records.
  const code = `${perStatement ? '\n#variable_conflict use_column' : ''}
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
  // It runs as its owner: nobody may attach it to another table (EXECUTE is checked when a trigger is created).
  const install = [body, `REVOKE ALL ON FUNCTION ${fn}() FROM PUBLIC`];
  for (const op of capture.operations) {
    const trigger = captureTriggerName(name, op);
    triggers.push(trigger);
    const when = whenFor(capture, op);
    install.push(`DROP TRIGGER IF EXISTS ${ident(trigger)} ON ${target}`);
    install.push(
      op === 'TRUNCATE'
        ? `CREATE TRIGGER ${ident(trigger)} AFTER TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`
        : perStatement
          ? `CREATE TRIGGER ${ident(trigger)} AFTER ${op} ON ${target} REFERENCING ${TRANSITION_TABLES[op]} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`
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
    // Without a primary key (or once its columns were dropped) the whole row is the only identity there is (documented).
    const whole = rowJson(record, table, undefined);
    return insertEvent(op, name, capture, table, key ? `COALESCE(${key}, ${whole})` : whole, 'NULL', 'NULL', 'NULL');
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
    if (op === 'UPDATE')
      changed = `ARRAY(SELECT e.k FROM jsonb_each(n) AS e(k, v) WHERE e.v IS DISTINCT FROM o -> e.k)`;
  }
  return [...lines, insertEvent(op, name, capture, table, key ?? 'NULL', before, after, changed)].join('\n');
}

function insertEvent(
  op: Operation,
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
  key: string,
  before: string,
  after: string,
  changed: string,
): string {
  const target = (v: string | undefined) => (v === undefined ? 'NULL' : literal(v));
  return `    INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, trace)
    VALUES (${literal(name)}, ${target(capture.topic)}, ${target(capture.function)}, '${op}', ${literal(table.schema)}, ${literal(table.name)}, ${key}, ${before}, ${after}, ${changed}, NULLIF(current_setting('rowcast.traceparent', true), ''));`;
}

function rowJson(record: string, table: TableInfo, columns: string[] | undefined): string {
  if (columns) return pickColumns(record, table, columns);
  const exact = table.columns.filter((c) => c.exactNumber);
  // to_jsonb(NEW) follows columns added later without re-applying; only exact numbers need naming. They are read
  // from that jsonb (which keeps every digit, scale, NaN and ±Infinity), never as NEW."col": a column dropped
  // while the trigger is installed must not make the writer's statement fail ("record has no field"); a dropped
  // column's null is stripped, so it is simply absent. Arrays: the jsonb array's text as an array literal.
  if (!exact.length) return `to_jsonb(${record})`;
  const fromJson = exact.map(
    (c) =>
      `${literal(c.name)}, ${c.array ? `to_jsonb(translate(NULLIF(j -> ${literal(c.name)}, 'null')::text, '[]', '{}')::text[])` : `j ->> ${literal(c.name)}`}`,
  );
  const chunks: string[] = [];
  for (let i = 0; i < fromJson.length; i += 50)
    chunks.push(`jsonb_build_object(${fromJson.slice(i, i + 50).join(', ')})`);
  return `(SELECT j || jsonb_strip_nulls(${chunks.join(' || ')}) FROM (SELECT to_jsonb(${record}) AS j) AS r)`;
}

function keyJson(record: string, table: TableInfo): string | undefined {
  if (!table.primaryKey.length) return undefined;
  // Every key column dropped: no key, as for a table without a primary key.
  return `NULLIF(${pickColumns(record, table, table.primaryKey)}, '{}'::jsonb)`;
}

/**
 * Named columns (the primary key, a capture's `columns`) read by name from to_jsonb(record), never as
 * record."col": a column dropped while the trigger is installed (even a key column) is then absent from the
 * object instead of failing the writer's statement with "record has no field". A column that exists but holds
 * NULL stays, as null. Exact numbers (bigint, numeric and their arrays) become strings, as in full rows.
 */
function pickColumns(record: string, table: TableInfo, names: string[]): string {
  const parts = names.map((name) => {
    const col = table.columns.find((c) => c.name === name)!;
    const key = literal(name);
    const value = !col.exactNumber
      ? `j -> ${key}`
      : col.array
        ? `to_jsonb(translate(NULLIF(j -> ${key}, 'null')::text, '[]', '{}')::text[])`
        : `j ->> ${key}`;
    return `CASE WHEN j ? ${key} THEN jsonb_build_object(${key}, ${value}) ELSE '{}'::jsonb END`;
  });
  return `(SELECT ${parts.join(' || ') || `'{}'::jsonb`} FROM (SELECT to_jsonb(${record}) AS j) AS r)`;
}

const TRANSITION_TABLES: Record<Exclude<Operation, 'TRUNCATE'>, string> = {
  INSERT: 'NEW TABLE AS rowcast_new',
  UPDATE: 'OLD TABLE AS rowcast_old NEW TABLE AS rowcast_new',
  DELETE: 'OLD TABLE AS rowcast_old',
};

/**
 * Statement-level capture: one INSERT … SELECT over the statement's transition table writes the same events a
 * row trigger would, one per row, with `when` as its WHERE. An UPDATE's old and new rows are paired by primary
 * key (compared in their jsonb form, so a dropped key column pairs nothing rather than failing the writer); a row
 * whose key itself changed has no before image.
 */
function statementBranch(
  op: Exclude<Operation, 'TRUNCATE'>,
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
): string {
  const when = whenFor(capture, op);
  const pairs = op === 'UPDATE' && (capture.payload === 'diff' || when !== undefined);
  if (pairs && !table.primaryKey.length) {
    throw new RowcastError(
      ErrorCodes.CAPTURE_INVALID,
      `captures.${name}: statement-level capture of UPDATE on ${table.schema}.${table.name} pairs old and new rows by primary key, and the table has none; add a primary key, use mode: 'row', or drop the diff payload and the UPDATE condition.`,
    );
  }
  let from = op === 'DELETE' ? 'rowcast_old AS old' : 'rowcast_new AS new';
  if (pairs) {
    const on = table.primaryKey
      .map((c) => `to_jsonb(old) -> ${literal(c)} = to_jsonb(new) -> ${literal(c)}`)
      .join(' AND ');
    from += ` LEFT JOIN rowcast_old AS old ON ${on}`;
  }
  return setBranch(op, name, capture, table, when, { from, withOld: pairs && capture.payload === 'diff' });
}

/**
 * Logical capture's rows: arrays of decoded rows (jsonb objects of PostgreSQL's text values, old and new paired by
 * the log itself), in commit order; each becomes a row of the table's type, aliased new and old as above.
 */
export interface DecodedRows {
  /** SQL for the arrays: old rows (jsonb[]), new rows (jsonb[]) and the writers' 32-bit xids (bigint[]). */
  old: string;
  new: string;
  xids: string;
}

/**
 * Where an event's transaction id and trace context come from. A trigger runs in the writer's transaction, so
 * both are the defaults (its xid, its session's rowcast.traceparent); decoded rows carry the writer's xid, and no
 * trace context.
 */
interface EventOrigin {
  txid: string;
  trace: string;
}

const DECODED_ORIGIN: EventOrigin = { txid: 'rowcast.xid8_of(c.x)', trace: 'NULL' };

/** The statement-level INSERT … SELECT of one operation, over decoded rows instead of transition tables. */
export function decodedBranch(
  op: Exclude<Operation, 'TRUNCATE'>,
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
  rows: DecodedRows,
  label?: 'READ',
): string {
  const rowType = qualified(table.schema, table.name);
  let from = `unnest(${rows.old}, ${rows.new}, ${rows.xids}) WITH ORDINALITY AS c(o, n, x, ord)`;
  if (op !== 'INSERT') from += ` CROSS JOIN LATERAL jsonb_populate_record(NULL::${rowType}, c.o) AS old`;
  if (op !== 'DELETE') from += ` CROSS JOIN LATERAL jsonb_populate_record(NULL::${rowType}, c.n) AS new`;
  const source = { from, withOld: op === 'UPDATE' && capture.payload === 'diff', orderBy: 'c.ord', label };
  return setBranch(op, name, capture, table, whenFor(capture, op), source, DECODED_ORIGIN);
}

/**
 * A backfill batch of a trigger capture: the rows of `batch` (a CTE of the table's rows, aliased new) become
 * events with op READ, shaped as the capture's INSERT events (its `when` for INSERT applies), in the order
 * `orderBy`, in the backfill's own transaction. Returns the INSERT, without its final semicolon.
 */
export function backfillEventsSql(
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
  batch: string,
  orderBy: string,
): string {
  const sql = setBranch('INSERT', name, capture, table, whenFor(capture, 'INSERT'), {
    from: `${batch} AS new`,
    withOld: false,
    orderBy,
    label: 'READ',
  });
  return sql.trim().replace(/;$/, '');
}

/** Where a set-based capture reads its rows from; `withOld`: an UPDATE's old rows are needed as jsonb too. */
interface RowSource {
  from: string;
  withOld: boolean;
  orderBy?: string;
  /** The events' op when it is not the operation's (a backfill's READ, shaped as INSERT). */
  label?: 'READ';
}

function setBranch(
  op: Exclude<Operation, 'TRUNCATE'>,
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
  when: string | undefined,
  source: RowSource,
  origin?: EventOrigin,
): string {
  let from = source.from;
  // Each row is turned into jsonb once (nj.j, oj.j), and the key and images are read from that: to_jsonb() of a
  // jsonb value is the value itself, so the row-level builders work on it unchanged.
  const NEW = 'nj.j';
  const OLD = 'oj.j';
  if (op !== 'DELETE') from += ' CROSS JOIN LATERAL (SELECT to_jsonb(new) AS j) AS nj';
  if (op === 'DELETE' || source.withOld) from += ' CROSS JOIN LATERAL (SELECT to_jsonb(old) AS j) AS oj';
  const record = op === 'DELETE' ? OLD : NEW;
  const key = keyJson(record, table);
  let before = 'NULL';
  let after = 'NULL';
  let changed = 'NULL';
  if (capture.payload === 'keys') {
    const whole = rowJson(record, table, undefined);
    return insertEvents(
      op,
      name,
      capture,
      table,
      key ? `COALESCE(${key}, ${whole})` : whole,
      'NULL',
      'NULL',
      'NULL',
      { ...source, from },
      when,
      origin,
    );
  }
  if (capture.payload === 'row') {
    if (op === 'DELETE') before = rowJson(OLD, table, capture.columns);
    else after = rowJson(NEW, table, capture.columns);
  } else {
    const images: string[] = [];
    if (op !== 'INSERT') images.push(`${rowJson(OLD, table, capture.columns)} AS o`);
    if (op !== 'DELETE') images.push(`${rowJson(NEW, table, capture.columns)} AS n`);
    from += ` CROSS JOIN LATERAL (SELECT ${images.join(', ')}) AS rc`;
    if (op !== 'INSERT') before = 'rc.o';
    if (op !== 'DELETE') after = 'rc.n';
    if (op === 'UPDATE')
      changed = `ARRAY(SELECT e.k FROM jsonb_each(rc.n) AS e(k, v) WHERE e.v IS DISTINCT FROM rc.o -> e.k)`;
  }
  return insertEvents(
    op,
    name,
    capture,
    table,
    key ?? 'NULL',
    before,
    after,
    changed,
    { ...source, from },
    when,
    origin,
  );
}

function insertEvents(
  op: Operation,
  name: string,
  capture: CaptureConfig,
  table: TableInfo,
  key: string,
  before: string,
  after: string,
  changed: string,
  source: RowSource,
  when: string | undefined,
  origin?: EventOrigin,
): string {
  const target = (v: string | undefined) => (v === undefined ? 'NULL' : literal(v));
  // Rows are numbered in the order the SELECT yields them: ORDER BY keeps a decoded batch's commit order.
  return `    INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, trace${origin ? ', txid' : ''})
    SELECT ${literal(name)}, ${target(capture.topic)}, ${target(capture.function)}, '${source.label ?? op}', ${literal(table.schema)}, ${literal(table.name)}, ${key}, ${before}, ${after}, ${changed}, ${origin ? `${origin.trace}, ${origin.txid}` : `NULLIF(current_setting('rowcast.traceparent', true), '')`}
      FROM ${source.from}${when ? `\n     WHERE (${when})` : ''}${source.orderBy ? `\n     ORDER BY ${source.orderBy}` : ''};`;
}

/**
 * Shared setup of the quick probes: a fresh database on the server of DATABASE_URL (migrated, config applied)
 * and a counting webhook receiver in a child process, so that it does not share the event loop being measured.
 */
import { readFileSync } from 'node:fs';
import { apply } from '../../src/admin/config/apply.js';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { insertRoutedEvents } from '../../test/support/database.js';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres.js';
import { Recorder } from '../support/recorder.js';

export type ProbeDatabase = ScratchDatabase;

/** A fresh, migrated database on the server of DATABASE_URL (the bench's scratch databases, with a bigger pool). */
export async function probeDatabase(name: string): Promise<ProbeDatabase> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl)
    throw new Error(
      'set DATABASE_URL to a server the probe may create databases on, e.g. postgres://postgres@127.0.0.1:5432/postgres',
    );
  return createScratchDatabase({ adminUrl }, `probe_${name}`, 10);
}

export async function applyProbeConfig(pool: Pool, input: RowcastConfigInput) {
  const config = parseConfig(input, 'probe config');
  await apply(pool, config);
  return config;
}

/**
 * PREFILL=n (the probes that read it): n messages of a topic nobody reads, n events routed long ago, and with
 * `invocationsOf` n finished invocations of that function, analyzed, as an installation's tables hold them (plans
 * depend on their size: migrations 053 and 054).
 */
export async function prefillFromEnv(pool: Pool, invocationsOf?: string): Promise<void> {
  const n = Number(process.env.PREFILL ?? 0);
  if (!n) return;
  await pool.query(
    `INSERT INTO rowcast.messages (id, topic, body) SELECT gen_random_uuid(), 'elsewhere', 'm' FROM generate_series(1, $1::int)`,
    [n],
  );
  await insertRoutedEvents(pool, n, 'elsewhere');
  if (invocationsOf)
    await pool.query(
      `INSERT INTO rowcast.invocations (function, payload, source, state, attempts, finished_at)
       SELECT $2, '{}', 'api', 'done', 1, now() FROM generate_series(1, $1::int)`,
      [n, invocationsOf],
    );
  await pool.query('ANALYZE rowcast.messages, rowcast.events, rowcast.invocations');
}

/**
 * The table `items` (as `columns`) captured on INSERT into topic `items`, read by `cursors` subscriptions s0, s1, …
 * (the default: through cursors) to an endpoint nothing listens on, for probes that lease without sending.
 */
export async function itemsReadBy(pool: Pool, cursors: number, columns = 'id bigint PRIMARY KEY'): Promise<string[]> {
  await pool.query(`CREATE TABLE items (${columns})`);
  const names = Array.from({ length: cursors }, (_, i) => `s${i}`);
  await applyProbeConfig(pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
    subscriptions: Object.fromEntries(
      names.map((name) => [name, { topic: 'items', protocol: 'http' as const, endpoint: 'http://127.0.0.1:9/' }]),
    ),
  });
  return names;
}

/** Polls `check` every 20 ms until it holds; throws after `ms`, naming what it waited for. */
export async function until(check: () => Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** Every invocation queued so far has finished. */
export async function invocationsDone(pool: Pool): Promise<boolean> {
  return (await pool.query(`SELECT 1 FROM rowcast.invocations WHERE state <> 'done' LIMIT 1`)).rowCount === 0;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export function cpuSecondsOf(pid: number | string): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by the PostgreSQL backends of a database (pids from pg_stat_activity). */
export async function backendCpu(pool: Pool, database: string): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [database],
  );
  return new Map(rows.map((r) => [r.pid, cpuSecondsOf(r.pid)]));
}

/** The benchmark's webhook receiver (bench/support/receiver-main.ts) in a child process: answers 200, counts. */
export function startCountingReceiver(): Promise<Recorder> {
  return Recorder.start(new URL('../support/receiver-main.ts', import.meta.url));
}

/** Peak RSS sampler of this process; at the peak also what V8 held (heap, external, array buffers), in MB. */
export function sampleRss(): { stop(): number; atPeak: Record<string, number> } {
  let peak = 0;
  const atPeak: Record<string, number> = {};
  const sample = () => {
    const m = process.memoryUsage();
    if (m.rss <= peak) return;
    peak = m.rss;
    for (const [k, v] of Object.entries(m)) atPeak[k] = Math.round(v / 1048576);
  };
  sample();
  const t = setInterval(sample, 100);
  return {
    atPeak,
    stop() {
      clearInterval(t);
      sample();
      return peak;
    },
  };
}

export interface StatementCost {
  /** The statement's text (normalised by pg_stat_statements), its whitespace folded, cut to 120 characters. */
  statement: string;
  calls: number;
  rowsPerCall: number;
  /** PostgreSQL's execution time and WAL, divided by the probe's items (deliveries, events). */
  usPerItem: number;
  walBytesPerItem: number;
}

/**
 * STATEMENTS=1: where PostgreSQL's time goes, per item. Needs a server started with
 * `-c shared_preload_libraries=pg_stat_statements` (add `-c pg_stat_statements.track=all` to see the statements
 * inside SQL and PL/pgSQL functions too). Resets the probe database's statistics now; the function it returns
 * reads the `top` statements by execution time since then.
 */
export async function measureStatements(pool: Pool, top = 12): Promise<(items: number) => Promise<StatementCost[]>> {
  await prepare(
    pool,
    [
      'CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
      'SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)',
      'SELECT calls FROM pg_stat_statements LIMIT 1',
    ],
    'STATEMENTS=1 needs pg_stat_statements loaded: start the server with -c shared_preload_libraries=pg_stat_statements',
  );
  return async (items) => {
    const { rows } = await pool.query<{ query: string; calls: string; rows: string; ms: number; wal: string }>(
      `SELECT query, calls, rows, total_exec_time AS ms, wal_bytes AS wal FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY total_exec_time DESC LIMIT $1`,
      [top],
    );
    const n = Math.max(items, 1);
    return rows.map((r) => ({
      statement: r.query.replace(/\s+/g, ' ').slice(0, 120),
      calls: Number(r.calls),
      rowsPerCall: Math.round(Number(r.rows) / Math.max(Number(r.calls), 1)),
      usPerItem: perItem(r.ms * 1000, n),
      walBytesPerItem: Math.round(Number(r.wal) / n),
    }));
  };
}

export interface WalCost {
  /** The relation a record's first block belongs to (or the resource manager for records without one). */
  relation: string;
  /** The resource manager's record type, e.g. Heap/INSERT, Btree/INSERT_LEAF. */
  record: string;
  records: number;
  /** Bytes per item: the records, and the full-page images among them (the first change of a page after a checkpoint). */
  bytesPerItem: number;
  fpiBytesPerItem: number;
}

/**
 * WAL=1: what the WAL written during the probe consists of, per relation and record type (pg_walinspect,
 * PostgreSQL 15 or later, as superuser). The WAL is the server's, so run it where nothing else writes. Returns the
 * function that reads the records since now, grouped, the largest `top`.
 */
export async function measureWal(pool: Pool, top = 14): Promise<(items: number) => Promise<WalCost[]>> {
  await prepare(
    pool,
    ['CREATE EXTENSION IF NOT EXISTS pg_walinspect'],
    'WAL=1 needs pg_walinspect (PostgreSQL 15 or later) and a superuser',
  );
  const start = (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  return async (items) => {
    // Up to the flushed end only (PostgreSQL 15 refuses a later one): a commit with a transaction id, synchronous
    // as the server's default is, flushes all that came before it.
    await pool.query('SELECT pg_current_xact_id()');
    const { rows } = await pool.query<{ relation: string; record: string; n: string; bytes: string; fpi: string }>(
      `WITH w AS (
         SELECT resource_manager || '/' || split_part(record_type, ' ', 1) AS record, record_length, fpi_length,
                substring(block_ref FROM 'rel \\d+/\\d+/(\\d+)')::oid AS filenode
           FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn()))
       SELECT coalesce(c.relname, CASE WHEN w.filenode IS NULL THEN '-' ELSE 'other database' END) AS relation,
              w.record, count(*) AS n, sum(w.record_length) AS bytes, sum(w.fpi_length) AS fpi
         FROM w LEFT JOIN pg_class c ON c.relfilenode = w.filenode
        GROUP BY 1, 2 ORDER BY sum(w.record_length) DESC LIMIT $2`,
      [start, top],
    );
    const n = Math.max(items, 1);
    return rows.map((r) => ({
      relation: r.relation,
      record: r.record,
      records: Number(r.n),
      bytesPerItem: perItem(Number(r.bytes), n),
      fpiBytesPerItem: perItem(Number(r.fpi), n),
    }));
  };
}

/** Runs the statements a measurement needs; if one fails, says what it needs (`need`) and why. */
async function prepare(pool: Pool, statements: string[], need: string): Promise<void> {
  try {
    for (const sql of statements) await pool.query(sql);
  } catch (err) {
    throw new Error(`${need} (${(err as Error).message})`, { cause: err });
  }
}

/** A total per item, to a tenth. */
const perItem = (total: number, items: number): number => Math.round((total * 10) / items) / 10;

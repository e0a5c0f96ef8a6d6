/**
 * Logical capture probe: how fast the reader turns a backlog in its slot into events, and what that costs in CPU
 * per event (this process: pgoutput parsing and batching; PostgreSQL: the walsender's decoding and the capture
 * function's inserts). N single-row INSERTs are written while no reader runs, then one starts.
 *   npx tsx bench/probes/logical-catchup.ts [rows]      (embedded PostgreSQL; DATABASE_URL needs wal_level=logical)
 */
import pg from 'pg';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { createScratchDatabase } from '../support/postgres.js';
import { applyProbeConfig, cpuSecondsOf } from './probe-db.js';

const rows = Number(process.argv[2] ?? 50_000);
const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const db = await createScratchDatabase({ adminUrl: process.env.DATABASE_URL ?? embedded!.url }, 'probe_logical', 10);
try {
  await db.pool.query(
    'CREATE TABLE t (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created_at timestamptz DEFAULT now())',
  );
  await applyProbeConfig(db.pool, {
    topics: { t: {} },
    captures: { t: { table: 't', topic: 't', operations: ['INSERT'], mode: 'logical' } },
  });

  const writers = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      return c;
    }),
  );
  let next = 0;
  await Promise.all(
    writers.map(async (c) => {
      while (next < rows) await c.query(`INSERT INTO t (id, name, qty, price) VALUES ($1, 'name', 3, 9.99)`, [next++]);
    }),
  );
  await Promise.all(writers.map((c) => c.end()));

  // CPU of each backend, the walsender (decoding) apart from the others (the capture function's inserts, routing).
  const seen = new Map<number, { walsender: boolean; cpu: number }>();
  const backends = async () => {
    const { rows: pids } = await db.pool.query<{ pid: number; walsender: boolean }>(
      `SELECT pid, backend_type = 'walsender' AS walsender FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [db.name],
    );
    for (const r of pids)
      seen.set(r.pid, { walsender: r.walsender, cpu: Math.max(seen.get(r.pid)?.cpu ?? 0, cpuSecondsOf(r.pid)) });
    let walsender = 0;
    let others = 0;
    for (const b of seen.values()) {
      if (b.walsender) walsender += b.cpu;
      else others += b.cpu;
    }
    return { walsender, others };
  };
  const cpu0 = process.cpuUsage();
  const started = Date.now();
  const rowcast = await startRowcast({
    databaseUrl: db.url,
    runtime: { logLevel: 'silent' },
    logger: createLogger('silent'),
  });
  let pgCpu = { walsender: 0, others: 0 };
  for (;;) {
    pgCpu = await backends();
    const { rows: r } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rowcast.events`);
    if (r[0]!.n >= rows) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await rowcast.stop();
  const perEvent = (s: number) => `${Math.round((s / rows) * 1e6)} µs/event`;
  console.log(`${rows} events in ${seconds.toFixed(2)} s: ${Math.round(rows / seconds)} events/s (includes routing)`);
  console.log(
    `CPU: rowcast ${perEvent((cpu.user + cpu.system) / 1e6)}; PostgreSQL: walsender ${perEvent(pgCpu.walsender)}, other backends ${perEvent(pgCpu.others)}`,
  );
} finally {
  await db.drop();
  await embedded?.stop();
}

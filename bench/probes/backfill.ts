/**
 * Backfill probe: rows/s and this process's peak RSS while `runBackfill` sends every row of a table as READ events
 * (a trigger capture: the events written in the batches' transactions; with --logical, a logical capture: the
 * batches go through the write-ahead log and a reader in this process writes the events, timed until all are in).
 *   npx tsx bench/probes/backfill.ts [rows] [batch] [--logical]   (embedded PostgreSQL, or DATABASE_URL)
 */
import { runBackfill } from '../../src/capture/backfill.js';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { createScratchDatabase } from '../support/postgres.js';
import { applyProbeConfig } from './probe-db.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const logical = process.argv.includes('--logical');
const rows = Number(args[0] ?? 1_000_000);
const batch = Number(args[1] ?? 1000);
const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const db = await createScratchDatabase({ adminUrl: process.env.DATABASE_URL ?? embedded!.url }, 'probe_backfill', 10);
try {
  await db.pool.query('CREATE TABLE t (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created_at timestamptz DEFAULT now())');
  await db.pool.query(`INSERT INTO t (id, name, qty, price) SELECT i, 'name ' || i, i % 100, 9.99 FROM generate_series(1, ${rows}) AS i`);
  await db.pool.query('VACUUM ANALYZE t');
  await applyProbeConfig(db.pool, { topics: { t: {} }, captures: { t: { table: 't', topic: 't', operations: ['INSERT'], mode: logical ? 'logical' : 'row' } } });
  // Routing would compete for the same cores: the reader runs (logical), the router has no subscription to feed.
  const rowcast = logical ? await startRowcast({ databaseUrl: db.url, runtime: { logLevel: 'silent' }, logger: createLogger('silent') }) : null;
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const rss0 = process.memoryUsage().rss;
  const started = Date.now();
  const done = await runBackfill(db.pool, 't', { batch });
  const sent = (Date.now() - started) / 1000;
  for (;;) {
    const { rows: r } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rowcast.events WHERE op = 'READ'`);
    if (r[0]!.n >= rows) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  await rowcast?.stop();
  const mb = (b: number) => `${Math.round(b / 1024 / 1024)} MB`;
  console.log(`${logical ? 'logical' : 'trigger'} capture, batch ${batch}: ${done.rowsSent} rows sent in ${sent.toFixed(1)} s, all events written after ${seconds.toFixed(1)} s: ${Math.round(rows / seconds)} rows/s`);
  console.log(`RSS: ${mb(rss0)} before, peak ${mb(peak)} during`);
} finally {
  await db.drop();
  await embedded?.stop();
}

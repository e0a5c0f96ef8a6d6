/**
 * Backfill probe: rows/s and this process's peak RSS while `runBackfill` sends every row of a table as READ events
 * (a trigger capture: the events written in the batches' transactions; with --logical, a logical capture: the
 * batches go through the write-ahead log and a reader in this process writes the events, timed until all are in).
 * With --pg-source the table is on a second (embedded) PostgreSQL read by logical replication; with --mysql on the
 * machine's MariaDB (ROWCAST_TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306, binlog on) read from its binlog;
 * both through a source reader in this process, timed until every event is in the store.
 *   npx tsx bench/probes/backfill.ts [rows] [batch] [--logical | --pg-source | --mysql]   (embedded PostgreSQL, or DATABASE_URL)
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { runBackfill } from '../../src/capture/backfill.js';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { createScratchDatabase } from '../support/postgres.js';
import { applyProbeConfig } from './probe-db.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const logical = process.argv.includes('--logical');
const mode = process.argv.includes('--mysql')
  ? 'mysql'
  : process.argv.includes('--pg-source')
    ? 'pg-source'
    : logical
      ? 'logical'
      : 'trigger';
const MARIADB = process.env.ROWCAST_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const rows = Number(args[0] ?? 1_000_000);
const batch = Number(args[1] ?? 1000);
const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const db = await createScratchDatabase({ adminUrl: process.env.DATABASE_URL ?? embedded!.url }, 'probe_backfill', 10);
const source = mode === 'pg-source' ? await startEmbeddedPostgres() : null;
const mysqlDb = `rowcast_probe_${process.pid}`;
const maria = mode === 'mysql' ? await mysql.createConnection(MARIADB) : null;
try {
  let config: RowcastConfigInput;
  if (mode === 'mysql') {
    await maria!.query(`CREATE DATABASE ${mysqlDb}`);
    await maria!.query(
      `CREATE TABLE ${mysqlDb}.t (id BIGINT PRIMARY KEY, name TEXT, qty INT, price DECIMAL(12,2), created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)`,
    );
    for (let from = 1; from <= rows; from += 10_000) {
      const values = Array.from(
        { length: Math.min(10_000, rows - from + 1) },
        (_, i) => `(${from + i}, 'name ${from + i}', ${(from + i) % 100}, 9.99)`,
      );
      await maria!.query(`INSERT INTO ${mysqlDb}.t (id, name, qty, price) VALUES ${values.join(',')}`);
    }
    config = {
      sources: { maria: { kind: 'mysql', url: MARIADB, serverId: 4_100_000 + (process.pid % 100_000) } },
      topics: { t: {} },
      captures: { t: { source: 'maria', table: `${mysqlDb}.t`, topic: 't', operations: ['INSERT'] } },
    };
  } else {
    const target = source ? new pg.Client({ connectionString: source.url }) : null;
    await target?.connect();
    const q = (sql: string) => (target ? target.query(sql) : db.pool.query(sql));
    await q(
      'CREATE TABLE t (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created_at timestamptz DEFAULT now())',
    );
    await q(
      `INSERT INTO t (id, name, qty, price) SELECT i, 'name ' || i, i % 100, 9.99 FROM generate_series(1, ${rows}) AS i`,
    );
    await q('VACUUM ANALYZE t');
    await target?.end();
    config = source
      ? {
          sources: { shop: { kind: 'postgres', url: source.url } },
          topics: { t: {} },
          captures: { t: { source: 'shop', table: 't', topic: 't', operations: ['INSERT'] } },
        }
      : {
          topics: { t: {} },
          captures: { t: { table: 't', topic: 't', operations: ['INSERT'], mode: logical ? 'logical' : 'row' } },
        };
  }
  await applyProbeConfig(db.pool, config);
  const { sources } = parseConfig(config, 'probe config');
  // Routing would compete for the same cores: the reader runs (logical, sources), the router has no subscription to feed.
  const rowcast =
    mode !== 'trigger'
      ? await startRowcast({
          databaseUrl: db.url,
          runtime: { logLevel: 'silent' },
          sources,
          logger: createLogger('silent'),
        })
      : null;
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const rss0 = process.memoryUsage().rss;
  const started = Date.now();
  const done = await runBackfill(db.pool, 't', { batch, sources });
  const sent = (Date.now() - started) / 1000;
  for (;;) {
    const { rows: r } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rowcast.events WHERE op = 'READ'`,
    );
    if (r[0]!.n >= rows) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  await rowcast?.stop();
  const mb = (b: number) => `${Math.round(b / 1024 / 1024)} MB`;
  console.log(
    `${mode} capture, batch ${batch}: ${done.rowsSent} rows sent in ${sent.toFixed(1)} s, all events written after ${seconds.toFixed(1)} s: ${Math.round(rows / seconds)} rows/s`,
  );
  console.log(`RSS: ${mb(rss0)} before, peak ${mb(peak)} during`);
} finally {
  await db.drop();
  await embedded?.stop();
  await source?.stop();
  await maria?.query(`DROP DATABASE IF EXISTS ${mysqlDb}`);
  await maria?.end();
}

/**
 * 8. Backfills: rows/s of `rowcast backfill` (runBackfill, as the CLI runs it, in this process) sending every row
 * of a five-column table as READ events, side by side in one run:
 *   - a trigger capture on the store (the READ events are written in the batches' own transactions);
 *   - a PostgreSQL source (a second, embedded PostgreSQL read by logical replication: the batches go through its
 *     write-ahead log and rowcast's reader writes the events);
 *   - a MySQL source (MariaDB, ROWCAST_BENCH_MYSQL_URL, default mysql://root@127.0.0.1:3306: the batches go
 *     through its binlog and rowcast's reader writes the events).
 * Each is timed from the start of the backfill until its last READ event is in the store; a rowcast process
 * (the readers) runs throughout, with no subscription (routing has nothing to deliver). A side the machine lacks
 * (MariaDB unreachable or without a ROW binlog) is left out.
 */
import { randomBytes, randomInt } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseConfig } from '../../src/admin/config/load-config.js';
import { runBackfill } from '../../src/capture/backfill.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import type { Pool } from '../../src/store/pool.js';
import { monotonicMs, sleep } from '../support/clock.js';
import type { BenchContext, Scenario } from '../support/context.js';
import { createScratchDatabase } from '../support/postgres.js';
import type { Measurement } from '../support/report.js';
import { applyBenchConfig, startBenchRowcast } from '../support/bench-rowcast.js';
import type { RowcastProcess } from '../../test/support/rowcast-process.js';
import { spread } from '../support/stats.js';
import { MYSQL_URL, mysqlUnavailable } from '../support/mysql.js';

const SIDES = {
  store: 'trigger capture (the store)',
  pg: 'PostgreSQL source (logical replication)',
  mysql: 'MySQL source (MariaDB binlog)',
} as const;
type Side = keyof typeof SIDES;

const PG_TABLE =
  'CREATE TABLE bf (id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created_at timestamptz DEFAULT now())';
const PG_FILL = (rows: number) =>
  `INSERT INTO bf (id, name, qty, price) SELECT i, 'name ' || i, i % 100, 9.99 FROM generate_series(1, ${rows}) AS i`;

/** Waits until `capture` has `expected` READ events (or nothing new came for stallMs); the count and when it was reached. */
async function readEvents(pool: Pool, capture: string, expected: number, stallMs: number) {
  let last = { count: -1, at: monotonicMs() };
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rowcast.events WHERE capture = $1 AND op = 'READ'`,
      [capture],
    );
    const n = rows[0]!.n;
    if (n !== last.count) last = { count: n, at: monotonicMs() };
    if (n >= expected || monotonicMs() - last.at > stallMs) return last;
    await sleep(50);
  }
}

export const backfill: Scenario = {
  id: 'backfill',
  title: 'backfill: rows/s of a backfill from the store, a PostgreSQL source and a MySQL source',
  async run(ctx: BenchContext) {
    const { profile, results } = ctx;
    const { rows, batch } = profile.backfill;
    const unavailable = await mysqlUnavailable();
    if (unavailable) ctx.log(`backfill: ${unavailable}: the MySQL row is left out`);
    const database = `rowcast_bench_${randomBytes(4).toString('hex')}`;
    const maria = unavailable ? null : await mysql.createConnection(MYSQL_URL);
    const db = await createScratchDatabase(ctx.server, 'backfill');
    const source = await startEmbeddedPostgres();
    let rowcast: RowcastProcess | null = null;
    try {
      ctx.log(`backfill: ${rows.toLocaleString('en-US')} rows in each table`);
      await db.pool.query(PG_TABLE);
      await db.pool.query(PG_FILL(rows));
      await db.pool.query('VACUUM ANALYZE bf');
      const target = new pg.Client({ connectionString: source.url });
      await target.connect();
      try {
        await target.query(PG_TABLE);
        await target.query(PG_FILL(rows));
        await target.query('VACUUM ANALYZE bf');
      } finally {
        await target.end();
      }
      if (maria) {
        await maria.query(`CREATE DATABASE ${database}`);
        await maria.query(
          `CREATE TABLE ${database}.bf (id BIGINT PRIMARY KEY, name TEXT, qty INT, price DECIMAL(12,2), created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)`,
        );
        for (let from = 1; from <= rows; from += 10_000) {
          const values = Array.from(
            { length: Math.min(10_000, rows - from + 1) },
            (_, i) => `(${from + i}, 'name ${from + i}', ${(from + i) % 100}, 9.99)`,
          );
          await maria.query(`INSERT INTO ${database}.bf (id, name, qty, price) VALUES ${values.join(',')}`);
        }
      }
      const config: RowcastConfigInput = {
        sources: {
          other: { kind: 'postgres', url: source.url },
          ...(maria
            ? { maria: { kind: 'mysql' as const, url: MYSQL_URL, serverId: randomInt(100_000, 4_000_000) } }
            : {}),
        },
        topics: { t: {} },
        captures: {
          store: { table: 'bf', topic: 't', operations: ['INSERT'] },
          pg: { source: 'other', table: 'bf', topic: 't', operations: ['INSERT'] },
          ...(maria ? { mysql: { source: 'maria', table: `${database}.bf`, topic: 't', operations: ['INSERT'] } } : {}),
        },
      };
      await applyBenchConfig(db.pool, config);
      const { sources } = parseConfig(config, 'bench config');
      rowcast = startBenchRowcast(db.url, config);
      await rowcast.started(db.pool);

      const sides: Side[] = ['store', 'pg', ...(maria ? (['mysql'] as const) : [])];
      const samples = new Map<Side, number[]>(sides.map((s) => [s, []]));
      const notes = new Map<Side, string>();
      for (let rep = 0; rep < profile.reps; rep++) {
        for (const side of sides) {
          const before = (await readEvents(db.pool, side, 0, 0)).count;
          const start = monotonicMs();
          const done = await runBackfill(db.pool, side, { batch, sources, restart: true });
          const sentS = (monotonicMs() - start) / 1000;
          const all = await readEvents(db.pool, side, before + rows, 30_000);
          if (all.count < before + rows)
            ctx.log(`backfill: ${SIDES[side]}: ${before + rows - all.count} rows were not events 30 s after the last`);
          const rate = (all.count - before) / ((all.at - start) / 1000);
          samples.get(side)!.push(rate);
          const note = `${done.rowsSent.toLocaleString('en-US')} rows, batch ${batch}: sent in ${sentS.toFixed(1)} s, all events in after ${((all.at - start) / 1000).toFixed(1)} s; rowcast peak RSS ${Math.round(rowcast.peakRssBytes / 2 ** 20)} MB`;
          notes.set(side, note);
          ctx.log(`backfill: ${SIDES[side]}: ${Math.round(rate).toLocaleString('en-US')} rows/s (${note})`);
        }
      }
      const measured = new Map<Side, Measurement>();
      for (const side of sides)
        measured.set(
          side,
          results.add({
            scenario: 'backfill',
            name: `${SIDES[side]}: backfill of ${rows.toLocaleString('en-US')} rows → READ events`,
            unit: 'rows/s',
            value: spread(samples.get(side)!),
            note: notes.get(side),
          }),
        );
      for (const side of ['pg', 'mysql'] as const)
        if (measured.has(side)) results.ratio(measured.get(side)!, measured.get('store')!, 'trigger capture');
    } finally {
      await rowcast?.stop().catch(() => {});
      await db.drop();
      await source.stop();
      if (maria) {
        await maria.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
        await maria.end();
      }
    }
  },
};

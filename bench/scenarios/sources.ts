/**
 * 6. Sources: a MySQL/MariaDB source (binlog → events) beside the store's own logical capture, in the same run:
 *   - capture rate: rows written as fast as 4 writers can (100-row INSERTs, one transaction each) become events
 *     (rows/s from the first commit until the last row is an event in rowcast.events);
 *   - latency: commit → topic → webhook at a steady 200 events/s through each, after a warm-up (as in latency.ts),
 *     with where the time went (stages(), on the machine's clock) in the log.
 * Needs MariaDB with its binary log on (ROWCAST_BENCH_MYSQL_URL, default mysql://root@127.0.0.1:3306; .ci/run and
 * docs/sources.md say how), and wal_level = logical for the PostgreSQL side; a side the machine lacks is left out.
 */
import { randomBytes, randomInt } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { monotonicMs, sleep } from '../support/clock.js';
import type { BenchContext, Scenario } from '../support/context.js';
import { createScratchDatabase, referenceTableDdl } from '../support/postgres.js';
import type { Measurement } from '../support/report.js';
import { applyBenchConfig, startBenchRowcast } from '../support/bench-rowcast.js';
import type { RowcastProcess } from '../../test/support/rowcast-process.js';
import { spread, windowedLatency } from '../support/stats.js';
import { IdSequence, insertBatchSql, writeAtRate, type OpenLoopResult } from '../support/writers.js';
import { MYSQL_URL, mysqlUnavailable } from '../support/mysql.js';

const MYSQL = 'MySQL source (MariaDB binlog)';
const LOGICAL = 'PostgreSQL logical capture (the store)';

/** The reference table on MariaDB (the same columns as referenceTableDdl). */
const mysqlTableDdl = (table: string) =>
  `CREATE TABLE ${table} (id BIGINT PRIMARY KEY, application VARCHAR(64), category VARCHAR(64), customer_reference_id VARCHAR(8),
    exception_reason VARCHAR(128), event_timestamp DATETIME(6))`;
const mysqlInsert = (table: string, first: number, rows: number) =>
  `INSERT INTO ${table} VALUES ${Array.from({ length: rows }, (_, i) => `(${first + i}, 'customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', UTC_TIMESTAMP(6))`).join(', ')}`;

/** writeAtRate's open loop, on MariaDB: `rate` single-row INSERTs per second, each one transaction (autocommit). */
async function writeMysqlAtRate(
  url: string,
  database: string,
  table: string,
  options: { rate: number; durationMs: number; connections: number; ids: IdSequence },
): Promise<OpenLoopResult> {
  const pool = mysql.createPool({ uri: url, database, connectionLimit: options.connections });
  const commits = new Map<number, number>();
  const inFlight = new Set<Promise<void>>();
  let late = 0;
  let failure: Error | undefined;
  try {
    const every = 1000 / options.rate;
    const start = monotonicMs() + 20;
    for (let k = 0; k < Math.floor(options.durationMs / every) && !failure; k++) {
      const due = start + k * every;
      const wait = due - monotonicMs();
      if (wait > 1) await sleep(wait - 0.5);
      if (monotonicMs() - due > 100) late++;
      const id = options.ids.take();
      const p = pool
        .query(mysqlInsert(table, id, 1))
        .then(
          () => void commits.set(id, monotonicMs()),
          (err: Error) => void (failure ??= err),
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    return { commits, achievedRate: commits.size / ((monotonicMs() - start) / 1000), late };
  } finally {
    await pool.end();
  }
}

/** Waits until `capture` has `expected` events (or nothing new came for stallMs); the time the last one arrived. */
async function eventsWritten(
  pool: Pool,
  capture: string,
  expected: number,
  stallMs: number,
): Promise<{ count: number; at: number }> {
  let last = { count: -1, at: monotonicMs() };
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM rowcast.events WHERE capture = $1',
      [capture],
    );
    const n = rows[0]!.n;
    if (n !== last.count) last = { count: n, at: monotonicMs() };
    if (n >= expected || monotonicMs() - last.at > stallMs) return last;
    await sleep(50);
  }
}

/**
 * Where the time goes, on the machine's clock (both servers run here): the row written (its event_timestamp, set by
 * the writing statement; MariaDB's in UTC, PostgreSQL's in the session's zone) → its event captured in the store →
 * routed → its delivery recorded.
 */
async function stages(
  pool: Pool,
  capture: string,
  utc: boolean,
  commits: ReadonlyMap<number, number>,
): Promise<string> {
  const ids = [...commits.keys()];
  const written = utc
    ? `((e.after ->> 'event_timestamp')::timestamp AT TIME ZONE 'UTC')`
    : `((e.after ->> 'event_timestamp')::timestamp AT TIME ZONE current_setting('TimeZone'))`;
  const { rows } = await pool.query<Record<string, number | null>>(
    `SELECT ${['c', 'r', 'd'].map((c) => `percentile_cont(0.5) WITHIN GROUP (ORDER BY ${c}) AS ${c}50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ${c}) AS ${c}99`).join(', ')}
       FROM (SELECT extract(epoch FROM e.captured_at - ${written}) * 1000 AS c, extract(epoch FROM m.created_at - e.captured_at) * 1000 AS r,
                    extract(epoch FROM d.delivered_at - m.created_at) * 1000 AS d
               FROM rowcast.events e JOIN rowcast.messages m ON m.event_id = e.id JOIN rowcast.deliveries d ON d.message_id = m.id
              WHERE e.capture = $1 AND (e.key ->> 'id')::bigint BETWEEN $2 AND $3 AND d.delivered_at IS NOT NULL) AS t`,
    [capture, Math.min(...ids), Math.max(...ids)],
  );
  const f = (v: number | null | undefined) => (v == null ? '?' : Number(v).toFixed(1));
  const r = rows[0] ?? {};
  return `stages: row written → event captured p50 ${f(r.c50)} / p99 ${f(r.c99)} ms, → routed p50 ${f(r.r50)} / p99 ${f(r.r99)} ms, → delivery recorded p50 ${f(r.d50)} / p99 ${f(r.d99)} ms`;
}

export const sources: Scenario = {
  id: 'sources',
  title: 'sources: a MySQL source beside the store’s logical capture (capture rate, latency)',
  async run(ctx: BenchContext) {
    const { profile, results, receiver } = ctx;
    const unavailable = await mysqlUnavailable();
    const logical = ctx.server.settings.wal_level === 'logical';
    if (unavailable) ctx.log(`sources: ${unavailable}: the MySQL rows are left out`);
    if (!logical)
      ctx.log('sources: the PostgreSQL server runs without wal_level = logical: the logical rows are left out');
    if (unavailable && !logical) return;

    const database = `rowcast_bench_${randomBytes(4).toString('hex')}`;
    const admin = unavailable ? null : await mysql.createConnection({ uri: MYSQL_URL, multipleStatements: true });
    const db = await createScratchDatabase(ctx.server, 'sources');
    let rowcast: RowcastProcess | null = null;
    try {
      if (admin) {
        await admin.query(`CREATE DATABASE ${database}`);
        for (const t of ['rate_rows', 'latency_rows']) await admin.query(mysqlTableDdl(`${database}.${t}`));
      }
      for (const t of ['rate_logical', 'latency_logical']) await db.pool.query(referenceTableDdl(t));
      const config: RowcastConfigInput = {
        topics: { counted: {}, timed: {} },
        ...(admin
          ? { sources: { maria: { kind: 'mysql' as const, url: MYSQL_URL, serverId: randomInt(100_000, 4_000_000) } } }
          : {}),
        captures: {
          ...(admin
            ? {
                mysql_rate: {
                  source: 'maria',
                  table: `${database}.rate_rows`,
                  topic: 'counted',
                  operations: ['INSERT'],
                },
                mysql_latency: {
                  source: 'maria',
                  table: `${database}.latency_rows`,
                  topic: 'timed',
                  operations: ['INSERT'],
                },
              }
            : {}),
          ...(logical
            ? {
                logical_rate: {
                  table: 'rate_logical',
                  topic: 'counted',
                  operations: ['INSERT'],
                  mode: 'logical' as const,
                },
                logical_latency: {
                  table: 'latency_logical',
                  topic: 'timed',
                  operations: ['INSERT'],
                  mode: 'logical' as const,
                },
              }
            : {}),
        },
        subscriptions: { timed: { topic: 'timed', protocol: 'http', endpoint: receiver.url } },
      };
      await applyBenchConfig(db.pool, config);
      rowcast = startBenchRowcast(db.url, config);
      await rowcast.started(db.pool);

      // Capture rate: the same rows, as fast as 4 writers go, for the same time on each side.
      const rows = profile.capture.rowsPerStatement;
      const rates = new Map<string, Measurement>();
      const sides = [...(admin ? [MYSQL] : []), ...(logical ? [LOGICAL] : [])];
      const rateSamples = new Map<string, number[]>(sides.map((s) => [s, []]));
      const ids = new IdSequence();
      for (let rep = 0; rep < profile.reps; rep++) {
        for (const side of sides) {
          const capture = side === MYSQL ? 'mysql_rate' : 'logical_rate';
          const before = (await eventsWritten(db.pool, capture, 0, 0)).count;
          const start = monotonicMs();
          const end = start + profile.capture.durationMs;
          let written = 0;
          if (side === MYSQL) {
            const pool = mysql.createPool({ uri: MYSQL_URL, database, connectionLimit: 4 });
            await Promise.all(
              Array.from({ length: 4 }, async () => {
                while (monotonicMs() < end) {
                  await pool.query(mysqlInsert('rate_rows', ids.take(rows), rows));
                  written += rows;
                }
              }),
            );
            await pool.end();
          } else {
            const sql = insertBatchSql('rate_logical')(rows);
            await Promise.all(
              Array.from({ length: 4 }, async () => {
                const client = await db.pool.connect();
                try {
                  while (monotonicMs() < end) {
                    await client.query(sql, [ids.take(rows)]);
                    written += rows;
                  }
                } finally {
                  client.release();
                }
              }),
            );
          }
          const done = await eventsWritten(db.pool, capture, before + written, 15_000);
          if (done.count < before + written)
            ctx.log(
              `sources: ${side}: ${before + written - done.count} of ${written} rows were not events 15 s after the last came`,
            );
          const rate = (done.count - before) / ((done.at - start) / 1000);
          rateSamples.get(side)!.push(rate);
          ctx.log(`sources: ${side}: ${written} rows → events at ${Math.round(rate).toLocaleString('en-US')} rows/s`);
        }
      }
      for (const side of sides) {
        rates.set(
          side,
          results.add({
            scenario: 'sources',
            name: `${side}: 100-row INSERTs of 4 writers → events`,
            unit: 'rows/s',
            value: spread(rateSamples.get(side)!),
          }),
        );
      }
      if (rates.has(MYSQL) && rates.has(LOGICAL))
        results.ratio(rates.get(MYSQL)!, rates.get(LOGICAL)!, 'logical capture');

      // Latency at a steady rate, commit → webhook, one side after the other.
      const { rate, durationMs, windows } = profile.latency;
      const p50s = new Map<string, Record<'p50' | 'p99', Measurement>>();
      const writeLatencyRows = (side: string, options: { rate: number; durationMs: number; connections: number }) =>
        side === MYSQL
          ? writeMysqlAtRate(MYSQL_URL, database, 'latency_rows', { ...options, ids })
          : writeAtRate(db.url, { ...options, rowsPerStatement: 1, ids, sql: insertBatchSql('latency_logical') });
      for (const side of sides) {
        // Warm up (connections, plans, the reader's first batches), as the latency scenario does, so that the
        // figures are steady state, not a cold start; then idle, as at 200 events/s most events find it.
        await receiver.reset(true);
        const warm = await writeLatencyRows(side, { rate: 50, durationMs: 500, connections: 1 });
        await receiver.waitFor(warm.commits.size, 15_000).catch((err: Error) => ctx.log(`sources: ${err.message}`));
        await rowcast.ready(db.pool, 120_000);
        await receiver.reset(true);
        const capture = side === MYSQL ? 'mysql_latency' : 'logical_latency';
        ctx.log(`sources: ${side}: ${rate} events/s for ${durationMs / 1000} s`);
        const written = await writeLatencyRows(side, { rate, durationMs, connections: 4 });
        await receiver.waitFor(written.commits.size, 15_000).catch((err: Error) => ctx.log(`sources: ${err.message}`));
        const arrivals = await receiver.samples();
        const { windows: summaries, overall } = windowedLatency(written.commits, arrivals, windows);
        const note = `${written.commits.size} events at ${Math.round(written.achievedRate)}/s${overall.missing ? `, ${overall.missing} never arrived` : ''}; whole run p50 ${overall.p50.toFixed(2)}, p99 ${overall.p99.toFixed(2)}, max ${overall.max.toFixed(1)} ms`;
        ctx.log(`sources: ${side}: ${note}`);
        await rowcast.ready(db.pool, 120_000);
        ctx.log(`sources: ${side}: ${await stages(db.pool, capture, side === MYSQL, written.commits)}`);
        const m = (stat: 'p50' | 'p99') =>
          results.add({
            scenario: 'sources',
            name: `${side}: commit → topic → webhook ${stat}`,
            unit: 'ms',
            value: spread(summaries.map((s) => s[stat])),
            note: stat === 'p50' ? note : undefined,
          });
        p50s.set(side, { p50: m('p50'), p99: m('p99') });
      }
      if (p50s.has(MYSQL) && p50s.has(LOGICAL))
        for (const stat of ['p50', 'p99'] as const)
          results.ratio(p50s.get(MYSQL)![stat], p50s.get(LOGICAL)![stat], 'logical capture');
    } finally {
      await rowcast?.stop().catch(() => {});
      await db.drop();
      if (admin) {
        await admin.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
        await admin.end();
      }
    }
  },
};

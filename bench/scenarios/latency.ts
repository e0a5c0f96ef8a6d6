/**
 * 2. Latency, commit → arrival, at a steady rate: rowcast (capture → topic → webhook), the same to a subscription
 * that reads its topic through a cursor (`cursor: true`, issue 20) instead of delivery rows, rowcast with a function in
 * the chain (capture → function → topic → webhook), its topic read through rows and through a cursor (the default),
 * the same through a Python function that publishes with boto3
 * (when python3 and boto3 are installed), rowcast with logical capture instead of a trigger, raw
 * LISTEN/NOTIFY (the floor) and graphile-worker (trigger add_job → task start), one after the other on the same
 * database. Commit time is when the writer's COMMIT
 * returned; every time is read from the machine's monotonic clock.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { GRAPHILE_DEFAULT, installGraphileTrigger, startGraphileWorker } from '../baselines/graphile-worker.js';
import { installNotifyTrigger, listen } from '../baselines/listen-notify.js';
import { sleep } from '../support/clock.js';
import type { BenchContext, Scenario } from '../support/context.js';
import { createScratchDatabase, referenceTableDdl } from '../support/postgres.js';
import type { Measurement } from '../support/report.js';
import { applyBenchConfig, startBenchRowcast } from '../support/bench-rowcast.js';
import { spread, windowedLatency } from '../support/stats.js';
import type { Pool } from '../../src/store/pool.js';
import { IdSequence, insertBatchSql, writeAtRate } from '../support/writers.js';

const DIRECT = 'rowcast: capture → topic → webhook';
const CURSOR = 'rowcast (cursor): capture → topic → webhook';
const FUNCTION = 'rowcast: capture → function → topic → webhook';
const FUNCTION_CURSOR = 'rowcast (cursor): capture → function → topic → webhook';
const LOGICAL = 'rowcast, logical capture: commit → topic → webhook';
const PYTHON = 'rowcast: capture → Python function (boto3 publish) → topic → webhook';
const PUBLISH_ONCE = fileURLToPath(new URL('../handlers/publish-once.ts', import.meta.url));
const HANDLERS = fileURLToPath(new URL('../handlers/', import.meta.url));

/** Whether the machine can run the reference's Python handler (python3 with boto3). */
function hasBoto3(): boolean {
  return spawnSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' }).status === 0;
}

/** A webhook subscription to topic, through delivery rows or (cursor) through a cursor over the topic's messages. */
const webhook = (receiverUrl: string, topic: string, cursor: boolean) => ({
  topic,
  protocol: 'http' as const,
  endpoint: receiverUrl,
  cursor,
});

const config = (receiverUrl: string, logical: boolean, python: boolean): RowcastConfigInput => ({
  // The cursor subscription has a topic of its own, so each system's events reach the receiver once.
  topics: { direct: {}, cursored: {}, published: {}, published_cursored: {} },
  captures: {
    direct: { table: 'latency_direct', topic: 'direct', operations: ['INSERT'] },
    cursored: { table: 'latency_cursor', topic: 'cursored', operations: ['INSERT'] },
    viafn: { table: 'latency_function', function: 'relay', operations: ['INSERT'] },
    viafncursor: { table: 'latency_function_cursor', function: 'relay_cursored', operations: ['INSERT'] },
    ...(logical
      ? { logical: { table: 'latency_logical', topic: 'direct', operations: ['INSERT'], mode: 'logical' as const } }
      : {}),
    ...(python ? { viapy: { table: 'latency_python', function: 'relay_py', operations: ['INSERT'] } } : {}),
  },
  // A generous timeout: a handler thread's cold start counts against it, and on a loaded machine exceeds the
  // default 3 s, turning the run into 60 s retry backoffs rather than a latency figure.
  functions: {
    relay: { handler: PUBLISH_ONCE, environment: { ENV_TOPIC: 'published' }, timeout: '30s' },
    relay_cursored: { handler: PUBLISH_ONCE, environment: { ENV_TOPIC: 'published_cursored' }, timeout: '30s' },
    // The config's default aws identity (us-east-1, account 000000000000) makes the topic's ARN.
    ...(python
      ? {
          relay_py: {
            runtime: 'python3',
            directory: HANDLERS,
            handler: 'publish_once.handler',
            environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:published' },
            timeout: '30s',
          },
        }
      : {}),
  },
  subscriptions: {
    direct: webhook(receiverUrl, 'direct', false),
    cursored: webhook(receiverUrl, 'cursored', true),
    published: webhook(receiverUrl, 'published', false),
    published_cursored: webhook(receiverUrl, 'published_cursored', true),
  },
});

interface System {
  name: string;
  table: string;
  /** Arrivals of this run (row id → ms), once the writers are done and the stragglers had time to arrive. */
  arrivals(expected: number): Promise<Map<number, number>>;
}

/**
 * Where rowcast's time went, on PostgreSQL's clock: trigger (captured_at, before COMMIT) → routed (its message's
 * created_at, the routing transaction's start) → delivery recorded done (after the webhook answered). Diagnostic;
 * not a target. A cursor records no delivery it completed, so for it only the first stage is known.
 */
async function rowcastStages(
  pool: Pool,
  table: string,
  commits: ReadonlyMap<number, number>,
  cursor: boolean,
): Promise<string> {
  const ids = [...commits.keys()];
  const { rows } = await pool.query<Record<string, number | null>>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY r) AS route50, percentile_cont(0.99) WITHIN GROUP (ORDER BY r) AS route99,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS deliver50, percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS deliver99
       FROM (SELECT extract(epoch FROM m.created_at - e.captured_at) * 1000 AS r, extract(epoch FROM d.delivered_at - m.created_at) * 1000 AS d
               FROM rowcast.events e JOIN rowcast.messages m ON m.event_id = e.id LEFT JOIN rowcast.deliveries d ON d.message_id = m.id
              WHERE e.table_name = $1 AND (e.key ->> 'id')::bigint BETWEEN $2 AND $3) AS t`,
    [table, Math.min(...ids), Math.max(...ids)],
  );
  const f = (v: number | null | undefined) => (v == null ? '?' : Number(v).toFixed(1));
  const r = rows[0] ?? {};
  const routed = `stages on PostgreSQL's clock: trigger → routed p50 ${f(r.route50)} / p99 ${f(r.route99)} ms`;
  if (cursor) return `${routed} (a cursor records no delivery done)`;
  return `${routed}, routed → delivery recorded p50 ${f(r.deliver50)} / p99 ${f(r.deliver99)} ms`;
}

/**
 * The function chain's stages, on PostgreSQL's clock: trigger → invocation queued (routing) → its results statement
 * began (hand-off to the handler thread, the handler, batching) → delivery recorded done (webhook, batching; not
 * through a cursor, which records no delivery it completed).
 */
async function functionStages(
  pool: Pool,
  table: string,
  commits: ReadonlyMap<number, number>,
  cursor: boolean,
): Promise<string> {
  const ids = [...commits.keys()];
  const { rows } = await pool.query<Record<string, number | null>>(
    `SELECT ${['q', 'r', 'd'].map((c) => `percentile_cont(0.5) WITHIN GROUP (ORDER BY ${c}) AS ${c}50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ${c}) AS ${c}99`).join(', ')}
       FROM (SELECT extract(epoch FROM i.created_at - e.captured_at) * 1000 AS q, extract(epoch FROM i.finished_at - i.created_at) * 1000 AS r,
                    extract(epoch FROM d.delivered_at - i.finished_at) * 1000 AS d
               FROM rowcast.events e JOIN rowcast.invocations i ON i.event_id = e.id LEFT JOIN rowcast.deliveries d ON d.message_id = i.published[1]
              WHERE e.table_name = $1 AND (e.key ->> 'id')::bigint BETWEEN $2 AND $3) AS t`,
    [table, Math.min(...ids), Math.max(...ids)],
  );
  const f = (v: number | null | undefined) => (v == null ? '?' : Number(v).toFixed(1));
  const r = rows[0] ?? {};
  const stages = `stages on PostgreSQL's clock: trigger → invocation queued p50 ${f(r.q50)} / p99 ${f(r.q99)} ms, → results written p50 ${f(r.r50)} / p99 ${f(r.r99)} ms`;
  return cursor
    ? `${stages} (a cursor records no delivery done)`
    : `${stages}, → delivery recorded p50 ${f(r.d50)} / p99 ${f(r.d99)} ms`;
}

export const latency: Scenario = {
  id: 'latency',
  title: 'latency: commit → webhook / task start at a steady rate',
  async run(ctx: BenchContext) {
    const { profile, results, receiver } = ctx;
    const { rate, durationMs, windows } = profile.latency;
    const db = await createScratchDatabase(ctx.server, 'latency');
    const stops: Array<() => Promise<void>> = [];
    try {
      for (const t of [
        'latency_direct',
        'latency_cursor',
        'latency_function',
        'latency_function_cursor',
        'latency_python',
        'latency_logical',
        'latency_notify',
        'latency_graphile',
      ])
        await db.pool.query(referenceTableDdl(t));
      // Logical capture needs wal_level = logical (the embedded server has it; a DATABASE_URL server may not).
      const logical = ctx.server.settings.wal_level === 'logical';
      const python = hasBoto3();
      if (!python)
        ctx.log(
          'latency: no python3 with boto3 here (apt-get install python3-boto3): the Python function row is left out',
        );
      await applyBenchConfig(db.pool, config(receiver.url, logical, python));
      await installNotifyTrigger(db.pool, 'latency_notify');
      await installGraphileTrigger(db.pool, db.url, 'latency_graphile');

      const rowcast = startBenchRowcast(db.url, config(receiver.url, logical, python));
      stops.push(() => rowcast.stop());
      await rowcast.started(db.pool);
      const listener = await listen(db.url);
      stops.push(() => listener.stop());
      const graphile = await startGraphileWorker(db.url, GRAPHILE_DEFAULT);
      stops.push(() => graphile.close());

      const fromReceiver = async (expected: number) => {
        await receiver.waitFor(expected, 15_000).catch((err: Error) => ctx.log(`latency: ${err.message}`));
        return receiver.samples();
      };
      const systems: System[] = [
        { name: DIRECT, table: 'latency_direct', arrivals: fromReceiver },
        { name: CURSOR, table: 'latency_cursor', arrivals: fromReceiver },
        { name: FUNCTION, table: 'latency_function', arrivals: fromReceiver },
        { name: FUNCTION_CURSOR, table: 'latency_function_cursor', arrivals: fromReceiver },
        ...(python ? [{ name: PYTHON, table: 'latency_python', arrivals: fromReceiver }] : []),
        ...(logical ? [{ name: LOGICAL, table: 'latency_logical', arrivals: fromReceiver }] : []),
        {
          name: 'LISTEN/NOTIFY (floor): trigger pg_notify → listener',
          table: 'latency_notify',
          arrivals: async () => {
            await sleep(500);
            return new Map(listener.arrivals);
          },
        },
        {
          name: `${GRAPHILE_DEFAULT.label}: trigger add_job → task start`,
          table: 'latency_graphile',
          arrivals: async (expected) => {
            await graphile
              .waitFor(expected, 15_000)
              .catch((err: Error) => ctx.log(`latency: graphile-worker: ${err.message}`));
            return graphile.samples();
          },
        },
      ];

      const ids = new IdSequence();
      const figures = new Map<string, Record<'p50' | 'p99' | 'max', Measurement>>();
      for (const system of systems) {
        // Warm up (handler threads, connections, plans), so the figures are steady state, not a cold start.
        await receiver.reset(true);
        await graphile.reset(true);
        const warm = await writeAtRate(db.url, {
          rate: 50,
          durationMs: 500,
          connections: 1,
          rowsPerStatement: 1,
          ids,
          sql: insertBatchSql(system.table),
        });
        await system.arrivals(warm.commits.size);
        // Then idle: the first event must find a sleeping dispatcher, as at 200 events/s most do.
        await rowcast.ready(db.pool, 120_000);
        await receiver.reset(true);
        await graphile.reset(true);
        listener.arrivals.clear();
        ctx.log(`latency: ${system.name}: ${rate} events/s for ${durationMs / 1000} s`);
        const written = await writeAtRate(db.url, {
          rate,
          durationMs,
          connections: 4,
          rowsPerStatement: 1,
          ids,
          sql: insertBatchSql(system.table),
        });
        const arrivals = await system.arrivals(written.commits.size);
        const { windows: summaries, overall } = windowedLatency(written.commits, arrivals, windows);
        const note = `${written.commits.size} events at ${Math.round(written.achievedRate)}/s${overall.missing ? `, ${overall.missing} never arrived` : ''}; whole run p50 ${overall.p50.toFixed(2)}, p99 ${overall.p99.toFixed(2)}, max ${overall.max.toFixed(1)} ms`;
        ctx.log(`latency: ${system.name}: ${note}`);
        const stages =
          system.table === 'latency_direct' || system.table === 'latency_cursor'
            ? await rowcastStages(db.pool, system.table, written.commits, system.table === 'latency_cursor')
            : system.table.startsWith('latency_function') || system.table === 'latency_python'
              ? await functionStages(db.pool, system.table, written.commits, system.table === 'latency_function_cursor')
              : undefined;
        if (stages) ctx.log(`latency: ${system.name}: ${stages}`);
        const m = (stat: 'p50' | 'p99' | 'max') =>
          results.add({
            scenario: 'latency',
            name: `${system.name} ${stat}`,
            unit: 'ms',
            value: spread(summaries.map((s) => s[stat])),
            note: stat === 'p50' ? note : stat === 'max' ? stages : undefined,
          });
        figures.set(system.name, { p50: m('p50'), p99: m('p99'), max: m('max') });
      }

      const direct = figures.get(DIRECT)!;
      const viaCursor = figures.get(CURSOR)!;
      const viaFunction = figures.get(FUNCTION)!;
      const viaFunctionCursor = figures.get(FUNCTION_CURSOR)!;
      const gw = figures.get(systems.at(-1)!.name)!;
      const viaLog = figures.get(LOGICAL);
      const viaPython = figures.get(PYTHON);
      for (const stat of ['p50', 'p99', 'max'] as const) {
        // The cursor path beside today's delivery rows in the same run (issue 20).
        results.ratio(viaCursor[stat], direct[stat], 'rows path');
        results.ratio(viaFunctionCursor[stat], viaFunction[stat], 'rows path');
        for (const m of [direct, viaCursor, viaFunction, viaFunctionCursor, ...(viaLog ? [viaLog] : [])])
          results.ratio(m[stat], gw[stat], 'graphile-worker');
        // The Python runtime beside the Node one of the same run (issue 18's figure).
        if (viaPython) results.ratio(viaPython[stat], viaFunction[stat], 'Node function');
      }
      // Below graphile-worker's figure of the same run, as well as under the absolute limit.
      const meets = (m: Measurement, limit: number, baseline: Measurement) =>
        m.value && baseline.value ? m.value.median <= limit && m.value.median < baseline.value.median : undefined;
      results.target(direct.p50, '≤ 3 ms and below graphile-worker', meets(direct.p50, 3, gw.p50));
      results.target(direct.p99, '≤ 10 ms and below graphile-worker', meets(direct.p99, 10, gw.p99));
      // Issue 20's targets, on the path it builds (cursors, the default), directly and through a function.
      const under = (m: Measurement, limit: number) => (m.value ? m.value.median <= limit : undefined);
      results.target(viaCursor.p50, '≤ 2 ms (issue 20)', under(viaCursor.p50, 2));
      results.target(viaCursor.p99, '≤ 8 ms (issue 20)', under(viaCursor.p99, 8));
      results.target(viaFunctionCursor.p50, '≤ 3 ms (issue 20)', under(viaFunctionCursor.p50, 3));
      results.target(viaFunctionCursor.p99, '≤ 15 ms (issue 20)', under(viaFunctionCursor.p99, 15));
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => {});
      await db.drop();
    }
  },
};

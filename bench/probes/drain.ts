/**
 * Drain probe: a backlog of captured events, then one rowcast process drains it; prints events/s (or
 * deliveries/s) and peak RSS.
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres [CURSOR=1 [SEGMENTS=0|1]] [FANOUT=n] [STATEMENTS=1] [WAL=1] npx tsx bench/probes/drain.ts webhook|fanout|function|python|log [events] [maxConcurrency]
 * FANOUT: the fanout scenario's subscriptions (default 10), to find where segments and the copy cross.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  applyProbeConfig,
  backendCpu,
  cpuSecondsOf,
  measureStatements,
  measureWal,
  probeDatabase,
  sampleRss,
  startCountingReceiver,
} from './probe-db.js';

const scenario = process.argv[2] ?? 'webhook';
const events = Number(process.argv[3] ?? 20_000);
const maxConcurrency = Number(process.argv[4] ?? 32);
const db = await probeDatabase(scenario);
const receiver = await startCountingReceiver();
await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)');

// CURSOR=1: the subscriptions read their topic through a cursor (issue 20).
const cursor = process.env.CURSOR === '1';
const subs = scenario === 'fanout' ? Number(process.env.FANOUT ?? 10) : scenario === 'webhook' ? 1 : 0;
if (!Number.isInteger(subs) || subs < 0)
  throw new Error(`FANOUT=${process.env.FANOUT}: give a whole number of subscriptions`);
// python: the benchmark's boto3 handler (bench/handlers/publish_once.py) in runtime processes, publishing to `out`.
const invokes = scenario === 'function' || scenario === 'python';
const config: RowcastConfigInput = {
  topics: { items: {}, out: {} },
  captures: {
    items: invokes
      ? { table: 'items', function: scenario === 'python' ? 'relay_py' : 'noop', operations: ['INSERT'] }
      : { table: 'items', topic: 'items', operations: ['INSERT'] },
  },
  subscriptions: Object.fromEntries(
    Array.from({ length: subs }, (_, i) => [
      `s${i}`,
      { topic: 'items', protocol: 'http' as const, endpoint: receiver.url, maxConcurrency, cursor },
    ]),
  ),
  functions: {
    noop: {
      handler: new URL('./noop-publisher.ts', import.meta.url).pathname,
      concurrency: Number(process.env.FN_CONCURRENCY ?? 4),
    },
    relay_py: {
      runtime: 'python3',
      directory: new URL('../handlers/', import.meta.url).pathname,
      handler: 'publish_once.handler',
      environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:out' },
      timeout: '30s',
      concurrency: Number(process.env.FN_CONCURRENCY ?? 10),
    },
  },
};
if (scenario === 'log') (config.subscriptions as any).log = { topic: 'items', protocol: 'log' };
await applyProbeConfig(db.pool, config);
// SEGMENTS=0: routing copies every event into a message row, as before segments were on by default (migration 044);
// SEGMENTS=1 (the default): it writes segments for topics read only through cursors (migration 042).
if (process.env.SEGMENTS)
  await db.pool.query('UPDATE rowcast.installation SET log_segments = $1', [process.env.SEGMENTS === '1']);
for (let i = 0; i < events; i += 50_000) {
  await db.pool.query(
    `INSERT INTO items SELECT g, 'name ' || g, g % 100 FROM generate_series($1::bigint, $2::bigint) g`,
    [i + 1, Math.min(events, i + 50_000)],
  );
}
// CPU time per event (this process = rowcast + the probe's polling; the backends of the probe database; the
// receiver): unlike rates, barely moved by other load on the machine.
// STATEMENTS=1: PostgreSQL's time and WAL per item, per statement (pg_stat_statements; see measureStatements).
const statements = process.env.STATEMENTS === '1' ? await measureStatements(db.pool) : null;
// WAL=1: the WAL of the drain per relation and record type (pg_walinspect; see measureWal).
const wal = process.env.WAL === '1' ? await measureWal(db.pool) : null;
// The main thread alone (a function's handlers run in worker threads): what bounds the drain when it is saturated.
const mainThread = `${process.pid}/task/${process.pid}`;
const cpu0 = { node: process.cpuUsage(), main: cpuSecondsOf(mainThread), receiver: cpuSecondsOf(receiver.pid) };
const startRssMb = Math.round(process.memoryUsage.rss() / 1048576);
const rss = sampleRss();
const started = Date.now();
const rowcast = await startRowcast({
  databaseUrl: db.url,
  runtime: {
    allowPrivateEndpoints: true,
    logLevel: 'warn',
    pollInterval: 200,
    concurrency: Number(process.env.CONCURRENCY ?? 256),
  },
  functions: parseConfig(config, 'probe').functions,
  logger: createLogger('warn'),
});
const pgBefore = await backendCpu(db.pool, db.name);
const target = invokes ? events : events * Math.max(subs, 1);
const doneCount = async () => {
  if (invokes)
    return Number((await db.pool.query(`SELECT count(*) FROM rowcast.invocations WHERE state = 'done'`)).rows[0].count);
  if (scenario === 'log')
    return Number((await db.pool.query(`SELECT count(*) FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].count);
  return (await receiver.arrivals()).count;
};
let last = 0;
// With --expose-gc: the live heap after a full collection, every 2 s (what is really held, not garbage).
const live: number[] = [];
const gc = (globalThis as { gc?: () => void }).gc;
const gcTimer =
  gc &&
  setInterval(() => {
    gc();
    live.push(Math.round(process.memoryUsage().heapUsed / 1048576));
  }, 2000);
// From a fifth of the drain on (threads started, handler modules loaded), the steady state's CPU per item.
let steady: { at: number; done: number; node: NodeJS.CpuUsage; main: number; pg: Map<number, number> } | null = null;
for (;;) {
  await new Promise((r) => setTimeout(r, 250));
  last = await doneCount();
  if (last >= target) break;
  if (!steady && last >= target / 5)
    steady = {
      at: Date.now(),
      done: last,
      node: process.cpuUsage(),
      main: cpuSecondsOf(mainThread),
      pg: await backendCpu(db.pool, db.name),
    };
  if (Date.now() - started > 600_000) break;
}
const seconds = (Date.now() - started) / 1000;
const nodeCpu = process.cpuUsage(cpu0.node);
let pgCpu = 0;
for (const [pid, at] of pgBefore) pgCpu += cpuSecondsOf(pid) - at;
for (const [pid] of await backendCpu(db.pool, db.name)) if (!pgBefore.has(pid)) pgCpu += cpuSecondsOf(pid);
const perEventUs = (s: number) => Math.round((s * 1e6) / Math.max(last, 1));
const cpuUsPerItem = {
  rowcast: perEventUs((nodeCpu.user + nodeCpu.system) / 1e6),
  rowcastMainThread: perEventUs(cpuSecondsOf(mainThread) - cpu0.main),
  postgres: perEventUs(pgCpu),
  receiver: perEventUs(cpuSecondsOf(receiver.pid) - cpu0.receiver),
  // The runtime processes (children of this one, started with rowcast: their start-up included).
  ...(scenario === 'python' ? { python: perEventUs(childrenCpu()) } : {}),
};
let steadyCpuUsPerItem: Record<string, number> | null = null;
if (steady) {
  const n = Math.max(last - steady.done, 1);
  const node = process.cpuUsage(steady.node);
  let pg = 0;
  for (const [pid, at] of steady.pg) pg += cpuSecondsOf(pid) - at;
  steadyCpuUsPerItem = {
    perSecond: Math.round((n * 1000) / (Date.now() - steady.at)),
    rowcast: Math.round((node.user + node.system) / n),
    rowcastMainThread: Math.round(((cpuSecondsOf(mainThread) - steady.main) * 1e6) / n),
    postgres: Math.round((pg * 1e6) / n),
  };
}
if (gcTimer) clearInterval(gcTimer);

/** CPU seconds of this process's child processes that are still running. */
function childrenCpu(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(fields[1]) === process.pid) total += cpuSecondsOf(pid);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}
const peak = rss.stop();
const perStatement = statements && (await statements(last));
const perWalRecord = wal && (await wal(last));
await rowcast.stop();
console.log(
  JSON.stringify({
    scenario,
    events,
    done: last,
    seconds: +seconds.toFixed(2),
    perSecond: Math.round(last / seconds),
    peakRssMb: Math.round(peak / 1048576),
    atPeak: rss.atPeak,
    startRssMb,
    liveHeapMb: live,
    cpuUsPerItem,
    steadyCpuUsPerItem,
    ...(perStatement ? { perStatement } : {}),
    ...(perWalRecord ? { perWalRecord } : {}),
  }),
);
await receiver.close();
await db.drop();

/**
 * 3. Drain throughput: a backlog of captured events (written set-based while no rowcast runs) delivered by one
 * rowcast process to one webhook subscription, fanned out to 10 subscriptions, and through a no-op function that
 * publishes once (in Node, and in Python with boto3 when the machine has both); the first three also with the
 * subscriptions reading through cursors (`cursor: true`, issue 20) beside today's delivery rows; baselines: graphile-worker draining the same number of no-op jobs (queued with add_jobs), with
 * default and batched settings, and the peer a user would build instead of rowcast: graphile-worker whose task
 * signs each job's payload and POSTs it to the same receiver (default and batched). Rate = arrivals / (last
 * arrival − first arrival); every run has a fresh database.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import {
  GRAPHILE_BATCHED,
  GRAPHILE_DEFAULT,
  type GraphileSettings,
  installGraphileSchema,
  queueGraphileJobs,
  startGraphileWorker,
} from '../baselines/graphile-worker.js';
import { monotonicMs, sleep } from '../support/clock.js';
import type { BenchContext, Scenario } from '../support/context.js';
import { createScratchDatabase, fillBacklog, referenceTableDdl } from '../support/postgres.js';
import type { Arrivals, Recorder } from '../support/recorder.js';
import type { Measurement } from '../support/report.js';
import { applyBenchConfig, startBenchRowcast } from '../support/bench-rowcast.js';
import type { RowcastProcess } from '../../test/support/rowcast-process.js';
import { spread } from '../support/stats.js';

const PUBLISH_ONCE = fileURLToPath(new URL('../handlers/publish-once.ts', import.meta.url));
const HANDLERS = fileURLToPath(new URL('../handlers/', import.meta.url));
/** A Python function publishing with boto3 (runtime processes): a quarter of the Node function's backlog, as it is slower. */
const PYTHON_SHARE = 4;

export type Kind = 'one' | 'fanout' | 'function' | 'python';

/**
 * Backlogs are captured by a statement-level trigger: the same events, written in a fraction of the time. With
 * cursor, every webhook subscription reads its topic through a cursor instead of delivery rows.
 */
function config(kind: Kind, receiverUrl: string, subscriptions: number, cursor = false): RowcastConfigInput {
  const http = (topic: string) => ({ topic, protocol: 'http' as const, endpoint: receiverUrl, cursor });
  if (kind === 'function') {
    return {
      topics: { published: {} },
      captures: { backlog: { table: 'backlog', function: 'relay', operations: ['INSERT'], mode: 'statement' } },
      // A generous timeout: a handler thread's cold start counts against it and, on a loaded machine, exceeds the
      // default 3 s (then every invocation waits out a 60 s retry backoff). Otherwise defaults (concurrency 10).
      functions: { relay: { handler: PUBLISH_ONCE, environment: { ENV_TOPIC: 'published' }, timeout: '30s' } },
      subscriptions: { published: http('published') },
    };
  }
  if (kind === 'python') {
    return {
      topics: { published: {} },
      captures: { backlog: { table: 'backlog', function: 'relay_py', operations: ['INSERT'], mode: 'statement' } },
      // The reference's shape: boto3 at module scope, one publish per event; the default aws identity makes the ARN.
      functions: {
        relay_py: {
          runtime: 'python3',
          directory: HANDLERS,
          handler: 'publish_once.handler',
          environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:published' },
          timeout: '30s',
        },
      },
      subscriptions: { published: http('published') },
    };
  }
  const n = kind === 'fanout' ? subscriptions : 1;
  return {
    topics: { changes: {} },
    captures: { backlog: { table: 'backlog', topic: 'changes', operations: ['INSERT'], mode: 'statement' } },
    subscriptions: Object.fromEntries(Array.from({ length: n }, (_, i) => [`hook${i + 1}`, http('changes')])),
  };
}

const perSecond = (a: Arrivals) =>
  a.count > 1 && a.last > a.first ? ((a.count - 1) * 1000) / (a.last - a.first) : Number.NaN;

/** Logs progress at most every 5 s. */
function progress(ctx: BenchContext, what: string, total: number) {
  let at = 0;
  return (a: { count: number }) => {
    if (Date.now() - at < 5000) return;
    at = Date.now();
    ctx.log(`${what}: ${a.count.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`);
  };
}

/**
 * Waits for the first arrival (a start-up on a loaded machine may take a while), then for n arrivals or at most
 * limitMs more; rejects when none come for a minute.
 */
async function watchDrain(
  counter: Recorder,
  n: number,
  onProgress: (a: Arrivals) => void,
  limitMs: number,
): Promise<Arrivals> {
  await counter.waitFor(1, 60_000, onProgress);
  return counter.waitFor(n, 60_000, onProgress, limitMs);
}

/** What a rowcast drain showed. */
export interface RowcastDrain {
  /** Deliveries (or events) per second: from the first arrival, or (with `processes`) from when all had started. */
  rate: number;
  /** The highest peak RSS of the rowcast processes, bytes. */
  peakRss: number;
  /** Each process's peak RSS, bytes. */
  peakRssEach: number[];
  delivered: number;
  capped: boolean;
  rssTimeline: Array<[number, number]>;
  /** With track: how many distinct rows arrived (count − distinct = duplicates). */
  distinct?: number;
}

export interface DrainOptions {
  /** The longest the drain is watched (default: the drains' cap). */
  watchMs?: number;
  /** Subscriptions of a fan-out drain (default: the drain scenario's). */
  subscriptions?: number;
  /**
   * rowcast processes on the one database (default 1). When given, the rate counts from the moment all have
   * registered, so a process still starting does not count as work sharing (and 1 is measured the same way).
   */
  processes?: number;
  /** Also record each arrival's row id: lost rows and duplicates are counted (one-subscription drains). */
  track?: boolean;
  /** The subscriptions read through cursors (`cursor: true`) rather than one delivery row per message. */
  cursor?: boolean;
}

/** Fills a backlog with rowcast stopped, then starts rowcast (one process, or several) and times the drain. */
export async function drainRowcast(
  ctx: BenchContext,
  kind: Kind,
  events: number,
  what: string,
  watchMsOrOptions?: number | DrainOptions,
): Promise<RowcastDrain> {
  const opts: DrainOptions =
    typeof watchMsOrOptions === 'number' ? { watchMs: watchMsOrOptions } : (watchMsOrOptions ?? {});
  const subs = opts.subscriptions ?? ctx.profile.drain.subscriptions;
  const n = opts.processes ?? 1;
  const cfg = config(kind, ctx.receiver.url, subs, opts.cursor);
  const db = await createScratchDatabase(ctx.server, `drain_${kind}${opts.cursor ? '_cursor' : ''}`);
  const rowcasts: RowcastProcess[] = [];
  const lastOutput = () =>
    rowcasts
      .map((r) => r.output.slice(-2000))
      .filter(Boolean)
      .join('\n---\n') || '(none)';
  try {
    await db.pool.query(referenceTableDdl('backlog'));
    await applyBenchConfig(db.pool, cfg);
    const fill = progress(ctx, `${what}: backlog written`, events);
    await fillBacklog(db.pool, 'backlog', 1, events, (count) => fill({ count }));
    await db.pool.query('VACUUM ANALYZE');
    await ctx.receiver.reset(opts.track ?? false);
    for (let i = 0; i < n; i++) rowcasts.push(startBenchRowcast(db.url, cfg));
    let from: Arrivals | undefined;
    if (opts.processes !== undefined) {
      await Promise.all(rowcasts.map((r) => r.started(db.pool)));
      from = await ctx.receiver.arrivals();
      from = { ...from, last: monotonicMs() };
    }
    const expected = kind === 'fanout' ? events * subs : events;
    const show = progress(ctx, `${what}: delivered`, expected);
    // A drain is watched for at most limitMs (the memory scenario's, or the drains' cap) from its first delivery:
    // the rate counts what arrived by then, so a slow build cannot stretch the run past its budget.
    const limitMs = opts.watchMs ?? ctx.profile.drain.maxMs;
    let arrivals = await watchDrain(ctx.receiver, expected, show, limitMs).catch((err: Error) => {
      throw new Error(`${what}: ${err.message}; rowcast's last output: ${lastOutput()}`);
    });
    if (arrivals.count < 2)
      throw new Error(
        `${what}: ${arrivals.count} of ${expected} arrived in ${limitMs / 1000} s; rowcast's last output: ${lastOutput()}`,
      );
    let distinct: number | undefined;
    if (opts.track) {
      // Duplicates can make the count reach `expected` before every row did: wait a little for the rest.
      const until = Date.now() + 10_000;
      for (;;) {
        distinct = (await ctx.receiver.samples()).size;
        if (distinct >= expected || arrivals.count < expected || Date.now() > until) break;
        await sleep(1000);
        arrivals = await ctx.receiver.arrivals();
      }
    }
    const rate =
      from && from.count < arrivals.count - 1 && arrivals.last > from.last
        ? ((arrivals.count - from.count) * 1000) / (arrivals.last - from.last)
        : perSecond(arrivals);
    const peakRssEach = rowcasts.map((r) => r.peakRssBytes);
    return {
      rate,
      peakRss: Math.max(...peakRssEach),
      peakRssEach,
      delivered: arrivals.count,
      capped: arrivals.count < expected,
      rssTimeline: rowcasts[0]!.rssTimeline,
      distinct,
    };
  } finally {
    await Promise.all(rowcasts.map((r) => r.stop()));
    await db.drop();
  }
}

/** A Standard Webhooks secret for the peer's signatures (rowcast signs with one of its own). */
const PEER_SECRET = `whsec_${Buffer.from('rowcast bench peer signing key!!').toString('base64')}`;

/**
 * graphile-worker draining `jobs`: no-op tasks, or (post) the peer's signed POSTs, counted where they arrive;
 * watched for at most limitMs (default: the drains' cap).
 */
export async function drainGraphile(
  ctx: BenchContext,
  settings: GraphileSettings,
  jobs: number,
  post = false,
  limitMs = ctx.profile.drain.maxMs,
): Promise<{ rate: number; capped: boolean; delivered: number }> {
  const db = await createScratchDatabase(ctx.server, 'drain_graphile');
  let worker: Recorder | undefined;
  const label = post ? `${settings.label} + signed POST` : settings.label;
  try {
    await installGraphileSchema(db.url);
    const fill = progress(ctx, `${label}: jobs queued`, jobs);
    await queueGraphileJobs(db.pool, 1, jobs, (count) => fill({ count }));
    await db.pool.query('VACUUM ANALYZE');
    await ctx.receiver.reset(false);
    worker = await startGraphileWorker(
      db.url,
      post ? { ...settings, post: { url: ctx.receiver.url, secret: PEER_SECRET } } : settings,
    );
    const counter = post ? ctx.receiver : worker;
    const done = await watchDrain(counter, jobs, progress(ctx, `${label}: jobs run`, jobs), limitMs);
    if (done.count < 2) throw new Error(`${label}: ${done.count} of ${jobs} jobs ran in ${limitMs / 1000} s`);
    return { rate: perSecond(done), capped: done.count < jobs, delivered: done.count };
  } finally {
    await worker?.close();
    await db.drop();
  }
}

export const drain: Scenario = {
  id: 'drain',
  title: 'drain: deliveries/s from a backlog',
  async run(ctx: BenchContext) {
    const { profile, results } = ctx;
    const { events, fanoutEvents, subscriptions, functionEvents, graphileJobs } = profile.drain;
    const python = spawnSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' }).status === 0;
    if (!python)
      ctx.log('drain: no python3 with boto3 here (apt-get install python3-boto3): the Python function row is left out');
    const rates: Record<string, number[]> = {
      one: [],
      fanout: [],
      function: [],
      oneCursor: [],
      fanoutCursor: [],
      functionCursor: [],
      python: [],
      default: [],
      batched: [],
      peerDefault: [],
      peerBatched: [],
    };
    /** How many repetitions of each drain hit the time cap (their rate counts what arrived by then). */
    const capped: Record<string, number> = {};
    const record = (key: string, r: { rate: number; capped: boolean }) => {
      rates[key]!.push(r.rate);
      if (r.capped) capped[key] = (capped[key] ?? 0) + 1;
    };
    const rss: number[] = [];
    /** Today's delivery rows, then the same drain through cursors, back to back so the machine's drift hits both. */
    const drainBothPaths = async (kind: Kind, n: number, what: string, unit: string) => {
      for (const cursor of [false, true]) {
        const label = cursor ? `${what} (cursor)` : what;
        const r = await drainRowcast(ctx, kind, n, label, { cursor });
        record(cursor ? `${kind}Cursor` : kind, r);
        if (kind === 'one' && !cursor) rss.push(r.peakRss / 2 ** 20);
        ctx.log(`${label}: ${Math.round(r.rate)} ${unit}/s, peak RSS ${Math.round(r.peakRss / 2 ** 20)} MB`);
      }
    };
    for (let rep = 0; rep < profile.drain.reps; rep++) {
      const tag = `drain ${rep + 1}/${profile.drain.reps}`;
      await drainBothPaths('one', events, `${tag} one subscription`, 'deliveries');
      await drainBothPaths('fanout', fanoutEvents, `${tag} fan-out`, 'deliveries');
      await drainBothPaths('function', functionEvents, `${tag} function`, 'events');
      if (python) {
        const py = await drainRowcast(
          ctx,
          'python',
          Math.round(functionEvents / PYTHON_SHARE),
          `${tag} Python function`,
        );
        record('python', py);
        ctx.log(`${tag} Python function: ${Math.round(py.rate)} events/s`);
      }
      for (const [key, settings] of [
        ['default', GRAPHILE_DEFAULT],
        ['batched', GRAPHILE_BATCHED],
      ] as const) {
        const r = await drainGraphile(ctx, settings, graphileJobs);
        record(key, r);
        ctx.log(`${tag} ${settings.label}: ${Math.round(r.rate)} jobs/s`);
      }
      for (const [key, settings] of [
        ['peerDefault', GRAPHILE_DEFAULT],
        ['peerBatched', GRAPHILE_BATCHED],
      ] as const) {
        const r = await drainGraphile(ctx, settings, graphileJobs, true);
        record(key, r);
        ctx.log(`${tag} ${settings.label} + signed POST: ${Math.round(r.rate)} deliveries/s`);
      }
    }
    const note = (key: string) =>
      capped[key]
        ? `stopped at the ${profile.drain.maxMs / 1000} s cap in ${capped[key]} of ${profile.drain.reps}; the rate counts what arrived`
        : undefined;
    const k = (n: number) => (n >= 1000 ? `${n / 1000}k` : String(n));
    const gwDefault = results.add({
      scenario: 'drain',
      name: `${GRAPHILE_DEFAULT.label}: ${k(graphileJobs)} no-op jobs`,
      unit: 'jobs/s',
      value: spread(rates.default!),
      note: note('default'),
    });
    results.add({
      scenario: 'drain',
      name: `${GRAPHILE_BATCHED.label}: ${k(graphileJobs)} no-op jobs`,
      unit: 'jobs/s',
      value: spread(rates.batched!),
      note: note('batched'),
    });
    const peer = (key: 'peerDefault' | 'peerBatched', settings: GraphileSettings) =>
      results.add({
        scenario: 'drain',
        name: `peer: ${settings.label} + signed undici POST: ${k(graphileJobs)} jobs → webhook`,
        unit: 'deliveries/s',
        value: spread(rates[key]!),
        note: note(key),
      });
    const peerDefault = peer('peerDefault', GRAPHILE_DEFAULT);
    const peerBatched = peer('peerBatched', GRAPHILE_BATCHED);
    const versusPeers = (m: Measurement) => {
      results.ratio(m, peerDefault, 'peer default');
      results.ratio(m, peerBatched, 'peer batched');
    };
    /** The same drain through cursors, right under its rows-path row, as a ratio to it (issue 20). */
    const cursorBeside = (rows: Measurement, kind: Kind, what: string) => {
      const key = `${kind}Cursor`;
      const m = results.add({
        scenario: 'drain',
        name: `rowcast (cursor): ${what}`,
        unit: rows.unit,
        value: spread(rates[key]!),
        note: note(key),
      });
      results.ratio(m, rows, 'rows path');
      results.ratio(m, gwDefault, 'graphile-worker default');
    };
    const oneWhat = `${k(events)} events → 1 webhook subscription`;
    const one = results.add({
      scenario: 'drain',
      name: `rowcast: ${oneWhat}`,
      unit: 'deliveries/s',
      value: spread(rates.one!),
      note: note('one'),
    });
    const r = results.ratio(one, gwDefault, 'graphile-worker default');
    results.target(
      one,
      `≥ 10,000/s and ≥ 5× graphile-worker default${r === undefined ? '' : ` (${r.toFixed(1)}×)`}`,
      one.value && r !== undefined ? one.value.median >= 10_000 && r >= 5 : undefined,
    );
    versusPeers(one);
    cursorBeside(one, 'one', oneWhat);
    const fanWhat = `${k(fanoutEvents)} events → ${subscriptions} subscriptions (fan-out)`;
    const fan = results.add({
      scenario: 'drain',
      name: `rowcast: ${fanWhat}`,
      unit: 'deliveries/s',
      value: spread(rates.fanout!),
      note: note('fanout'),
    });
    results.ratio(fan, gwDefault, 'graphile-worker default');
    versusPeers(fan);
    results.target(fan, '≥ 10,000/s', fan.value ? fan.value.median >= 10_000 : undefined);
    cursorBeside(fan, 'fanout', fanWhat);
    const fnWhat = `${k(functionEvents)} events → no-op function → webhook`;
    const fn = results.add({
      scenario: 'drain',
      name: `rowcast: ${fnWhat}`,
      unit: 'events/s',
      value: spread(rates.function!),
      note: note('function'),
    });
    results.ratio(fn, gwDefault, 'graphile-worker default');
    versusPeers(fn);
    results.target(fn, '≥ 5,000/s', fn.value ? fn.value.median >= 5000 : undefined);
    cursorBeside(fn, 'function', fnWhat);
    if (python) {
      const pyEvents = Math.round(functionEvents / PYTHON_SHARE);
      const py = results.add({
        scenario: 'drain',
        name: `rowcast: ${k(pyEvents)} events → no-op Python function (boto3 publish) → webhook`,
        unit: 'events/s',
        value: spread(rates.python!),
        note: note('python'),
      });
      results.ratio(py, fn, 'Node function');
    }
    results.add({
      scenario: 'drain',
      name: `rowcast peak RSS draining ${k(events)} events`,
      unit: 'MB',
      value: spread(rss),
    });
  },
};

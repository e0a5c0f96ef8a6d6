import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fetch } from 'undici';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import { BUCKET_MS, LATENCY_BOUNDS, minuteStart, writeActivity } from '../../src/observability/activity.js';
import { getStats } from '../../src/admin/inspect/activity-stats.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/*
 * The rates of GET /api/overview and the series of GET /api/stats are those of every process sharing the database
 * (rowcast.activity), not of the process that answers.
 */

const TEST = { timeout: patient(120_000) };
// Nothing dies in these tests, so no lease should ever run out: the tests' usual 3 s lease did on a loaded machine
// (an attempt and its batched result took longer), and the other runtime sent the message again — at-least-once
// allows that, but then the counts below would be inflated by the copies.
const RUNTIME = { http: { port: 0, host: '127.0.0.1' }, lease: 60_000 };
// Nor should an attempt time out: this process runs both runtimes and both receivers, and with the default 10 s, a
// starved event loop (a full `npm test` beside a CPU-heavy process) let answers come too late — the attempts were
// retried, and the receiver counted 226 deliveries of 200 messages.
const PATIENT = { timeout: '50s' };
const ROWS = 200;
const CALLS = 20;

let db: TestDatabase;
let hook: WebhookReceiver;
let flaky: WebhookReceiver;
const runtimes: RowcastRuntime[] = [];
let child: RowcastProcess | undefined;
let configFile: ReturnType<typeof writeConfigFile> | undefined;

const webhookId = (r: ReceivedRequest) => r.headers['webhook-id'] as string;

const config = (): RowcastConfigInput => ({
  topics: { orders: {}, 'traced-out': {} },
  functions: {
    echo: { handler: 'test/fixtures/handlers/trace-echo.ts', minDelay: '50ms', maxDelay: '100ms', timeout: '30s' },
  },
  captures: {
    orders: { table: 'orders', topic: 'orders' },
    calls: { table: 'calls', function: 'echo', operations: ['INSERT'] },
  },
  subscriptions: {
    hook: { topic: 'orders', protocol: 'http', endpoint: hook.url, deliveryPolicy: PATIENT },
    // Every message fails once, then goes through: ROWS failed attempts and ROWS deliveries.
    flaky: {
      topic: 'orders',
      protocol: 'http',
      endpoint: flaky.url,
      deliveryPolicy: { ...PATIENT, minDelay: '50ms', maxDelay: '100ms' },
    },
  },
});

before(async () => {
  db = await createTestDatabase();
  hook = await WebhookReceiver.start();
  flaky = await WebhookReceiver.start();
  const seen = new Set<string>();
  flaky.reply = (req) => {
    if (seen.has(webhookId(req))) return { status: 200 };
    seen.add(webhookId(req));
    return { status: 500 };
  };
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY, note text); CREATE TABLE calls (id int PRIMARY KEY)');
  await applyConfig(db.pool, config());
  const functions = parseConfig(config(), 'test config').functions;
  for (let i = 0; i < 2; i++) runtimes.push(await startTestRowcast(db.url, RUNTIME, functions));
});

after(async () => {
  for (const r of runtimes) await r.stop().catch(() => {});
  if (child) {
    child.kill('SIGKILL');
    await child.exited;
  }
  configFile?.remove();
  await hook?.close();
  await flaky?.close();
  await db?.drop();
});

async function get(runtime: RowcastRuntime, path: string): Promise<any> {
  const res = await fetch(`${runtime.httpUrl!}/api${path}`);
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

const total = (stats: any, k: string) => stats.series.reduce((a: number, p: any) => a + p[k], 0);

/** What either runtime reports, once both report `expected` (writes to rowcast.activity happen every few seconds). */
async function bothReport(expected: {
  delivered: number;
  failed: number;
  hookPerMinute: number;
  flakyErrorsPerMinute: number;
  echoPerMinute: number;
}) {
  return eventually<any[]>(
    async () => {
      const answers = [];
      for (const r of runtimes) {
        const [stats, overview] = await Promise.all([get(r, '/stats?window=5m&step=10s'), get(r, '/overview')]);
        const sub = (name: string) => overview.subscriptions.find((s: any) => s.name === name);
        const got = {
          delivered: total(stats, 'delivered'),
          failed: total(stats, 'failed'),
          hookPerMinute: sub('hook').deliveredPerMinute,
          flakyErrorsPerMinute: sub('flaky').errorsPerMinute,
          echoPerMinute: overview.functions.find((f: any) => f.name === 'echo').invocationsPerMinute,
        };
        assert.deepEqual(got, expected);
        answers.push({ stats, overview });
      }
      return answers;
    },
    `both runtimes to report ${JSON.stringify(expected)}`,
    30_000,
  );
}

describe('activity across processes', () => {
  test('two runtimes share the work; either one reports the total of both', TEST, async () => {
    for (let t = 0; t < 4; t++) {
      const ids = Array.from({ length: ROWS / 4 }, (_, i) => t * (ROWS / 4) + i + 1);
      await db.pool.query(`INSERT INTO orders SELECT g, 'row ' || g FROM unnest($1::int[]) g`, [ids]);
    }
    await db.pool.query(`INSERT INTO calls SELECT generate_series(1, ${CALLS})`);
    await eventually(
      () =>
        new Set(hook.delivered.map(webhookId)).size === ROWS && new Set(flaky.delivered.map(webhookId)).size === ROWS,
      'every message delivered to both subscriptions',
      60_000,
    );
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations WHERE state = 'done'`)).rows[0].n ===
        CALLS,
      'every invocation done',
      60_000,
    );

    assert.equal(hook.delivered.length, ROWS, 'no message twice: the counts below are not inflated by double claims');
    const [{ stats }] = await bothReport({
      delivered: 2 * ROWS,
      failed: ROWS,
      hookPerMinute: ROWS,
      flakyErrorsPerMinute: ROWS,
      echoPerMinute: CALLS,
    });
    assert.ok(
      stats.series.some((p: any) => p.latencyP50Ms !== null && p.latencyP99Ms >= p.latencyP50Ms),
      'latency percentiles from the summed histograms',
    );

    // The counts are in the database once, however many runtimes this process runs (observations are per process).
    const stored = await eventually(async () => {
      const { rows } = await db.pool.query(
        `SELECT kind, name, sum(count)::int AS count, sum(errors)::int AS errors FROM rowcast.activity GROUP BY 1, 2 ORDER BY 1, 2`,
      );
      // Each runtime writes its counts every few seconds: wait for every one the assertion below reads, not two of them.
      const at = (name: string) => rows.find((r) => r.name === name);
      return (
        at('hook')?.count === ROWS &&
        at('flaky')?.count === ROWS &&
        at('flaky')?.errors === ROWS &&
        at('echo')?.count === CALLS &&
        rows
      );
    }, 'the counts written to rowcast.activity');
    assert.deepEqual(
      stored.filter((r) => r.kind !== 'router'),
      [
        { kind: 'function', name: 'echo', count: CALLS, errors: 0 },
        { kind: 'subscription', name: 'flaky', count: ROWS, errors: ROWS },
        { kind: 'subscription', name: 'hook', count: ROWS, errors: 0 },
      ],
    );
    const routed = stored.find((r) => r.kind === 'router');
    assert.ok(routed && routed.count >= ROWS + CALLS, `events routed: ${JSON.stringify(routed)}`);
  });

  test('counts written by another process are added, histograms bucket by bucket', TEST, async () => {
    // Another process's flushes: twice into a bucket half an hour ago, before this file's work (50 deliveries of hook
    // at ≤ 60 s, 3 failed attempts), and once into the current bucket (7 deliveries, for the rate).
    const now = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    const old = now - 30 * 60_000;
    const slow = LATENCY_BOUNDS.indexOf(60_000);
    const latency = LATENCY_BOUNDS.map((_, i) => (i === slow ? 25 : 0));
    for (let i = 0; i < 2; i++)
      await writeActivity(db.pool, [
        { bucket: old, kind: 'subscription', name: 'hook', count: 25, errors: i === 0 ? 3 : 0, latency },
      ]);
    await writeActivity(db.pool, [
      { bucket: now, kind: 'subscription', name: 'hook', count: 7, errors: 0, latency: null },
    ]);
    const { rows } = await db.pool.query(
      `SELECT count::int, errors::int, latency::int[] FROM rowcast.activity WHERE bucket = $1 AND kind = 'subscription' AND name = 'hook'`,
      [new Date(old)],
    );
    assert.deepEqual(
      rows,
      [{ count: 50, errors: 3, latency: LATENCY_BOUNDS.map((_, i) => (i === slow ? 50 : 0)) }],
      'added up, histograms element by element',
    );

    await eventually(
      async () => {
        const {
          rows: [stored],
        } = await db.pool.query(
          `SELECT sum(count)::int AS n FROM rowcast.activity WHERE kind = 'subscription' AND name = 'hook' AND bucket >= $1`,
          [new Date(minuteStart())],
        );
        for (const r of runtimes) {
          const [stats, overview] = await Promise.all([get(r, '/stats?window=1h&step=10s'), get(r, '/overview')]);
          assert.deepEqual([total(stats, 'delivered'), total(stats, 'failed')], [2 * ROWS + 57, ROWS + 3]);
          const point = stats.series.find((p: any) => Date.parse(p.t) === old);
          assert.deepEqual(
            [point?.delivered, point?.latencyP50Ms, point?.latencyP99Ms],
            [50, 60_000, 60_000],
            'percentiles from the stored histogram',
          );
          // The last minute may or may not still hold the first test's deliveries: what matters is that it is the table's.
          const perMinute = overview.subscriptions.find((s: any) => s.name === 'hook').deliveredPerMinute;
          assert.ok(
            perMinute >= 7 && perMinute === stored.n,
            `hook: ${perMinute} per minute, ${stored.n} stored in the last minute`,
          );
        }
        return true;
      },
      "both runtimes to add the other process's counts",
      30_000,
    );
  });

  test(
    'another operating-system process: what it delivered is reported by a process that delivered none of it',
    { timeout: patient(240_000) },
    async () => {
      // This process stops counting: whatever the new runtime below reports about the child's work came from the database.
      for (const r of runtimes.splice(0)) await r.stop();
      const before = await getStats(db.pool, 3_600_000, 60_000);
      // Handler paths in a config file are relative to the file, which lives in a temporary directory.
      const handler = fileURLToPath(new URL('../fixtures/handlers/trace-echo.ts', import.meta.url));
      const childConfig = config();
      childConfig.functions = { echo: { ...childConfig.functions!.echo!, handler } };
      configFile = writeConfigFile({ ...childConfig, runtime: { pollInterval: '200ms', logLevel: 'warn' } });
      child = RowcastProcess.start(configFile.file, db.url);
      try {
        await child.ready(db.pool, 120_000);
        await db.pool.query(`INSERT INTO orders SELECT g, 'child ' || g FROM generate_series(1001, 1050) g`);
        await eventually(
          () =>
            new Set(hook.delivered.map(webhookId)).size === ROWS + 50 &&
            new Set(flaky.delivered.map(webhookId)).size === ROWS + 50,
          'the child to deliver',
          60_000,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- rowcast pid ${child.pid} printed:\n${child.output}`, {
          cause: err,
        });
      }
      runtimes.push(await startTestRowcast(db.url, RUNTIME));
      await eventually(
        async () => {
          const stats = await get(runtimes[0]!, '/stats?window=1h&step=1m');
          assert.deepEqual(
            [total(stats, 'delivered'), total(stats, 'failed')],
            [total(before, 'delivered') + 2 * 50, total(before, 'failed') + 50],
            "the child's deliveries (hook and flaky) and failed attempts (flaky, once each)",
          );
          const overview = await get(runtimes[0]!, '/overview');
          assert.ok(overview.subscriptions.find((s: any) => s.name === 'hook').deliveredPerMinute >= 50);
          return true;
        },
        "the child's counts, written to rowcast.activity, in the API of another process",
        30_000,
      );
      child.kill('SIGTERM');
      assert.equal((await child.exit(30_000)).code, 0);
    },
  );
});

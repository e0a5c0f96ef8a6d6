import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { freePort } from '../../src/store/embedded-postgres.js';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import type { ReceivedRequest } from '../support/webhook-receiver.js';

const scenario = new FaultScenario();
after(() => scenario.cleanup());

const GRACE_MS = 2000;
/** Scheduling slack on a loaded 2-core machine: closing the HTTP server, the listener and the pool after the grace. */
const EXIT_SLACK_MS = 4000;
const HANDLER = fileURLToPath(new URL('./handlers/sleepy-publisher.ts', import.meta.url));

interface Probe {
  at: number;
  path: string;
  status: number | 'refused';
  body?: { status?: string; checks?: Record<string, unknown> };
}

async function probe(base: string, path: string): Promise<Probe> {
  const at = Date.now();
  try {
    const res = await fetch(base + path, { signal: AbortSignal.timeout(2000) });
    return { at, path, status: res.status, body: (await res.json().catch(() => undefined)) as Probe['body'] };
  } catch {
    return { at, path, status: 'refused' };
  }
}

test(
  'SIGTERM while deliveries and a handler are in flight: stops claiming, drains within the grace, not ready meanwhile, exits 0; a second process delivers the rest',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, async () => {
      const db = await scenario.createDatabase();
      const items = await scenario.addReceiver();
      const results = await scenario.addReceiver();
      const pings = await scenario.addReceiver();
      await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
      await db.pool.query('CREATE TABLE jobs (id int PRIMARY KEY, ms int NOT NULL)');
      const port = await freePort();
      const config: RowcastConfigInput = {
        topics: { items: {}, results: {} },
        captures: { items: { table: 'items', topic: 'items' }, jobs: { table: 'jobs', function: 'sleepy' } },
        functions: {
          sleepy: {
            handler: HANDLER,
            timeout: '60s',
            minDelay: '50ms',
            maxDelay: '100ms',
            environment: { ENV_TOPIC_ARN: 'results', PING_URL: pings.url },
          },
        },
        subscriptions: {
          items: {
            topic: 'items',
            protocol: 'http',
            endpoint: items.url,
            maxConcurrency: 8,
            deliveryPolicy: { minDelay: '50ms', maxDelay: '300ms', timeout: '30s' },
            // Rows: what the draining process held is counted in delivery rows.
            cursor: false,
          },
          results: {
            topic: 'results',
            protocol: 'http',
            endpoint: results.url,
            deliveryPolicy: { minDelay: '50ms', maxDelay: '300ms', timeout: '5s' },
          },
        },
        runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: `${GRACE_MS}ms`, http: { port } },
      };
      await scenario.useConfig(db.pool, config);
      const first = await scenario.spawn(db.pool, db.url);
      const base = `http://127.0.0.1:${port}`;
      // The HTTP server starts listening just after the workers.
      await eventually(
        async () => (await probe(base, '/readyz')).status === 200,
        '/readyz to answer 200 before SIGTERM',
        30_000,
      );

      // The subscriber: ids 1–4 are held until the first process is gone (in flight when the grace ends: aborted
      // and released); the others answer after a second (those in flight at SIGTERM finish within the grace).
      let releaseHeld!: () => void;
      const held = new Promise<void>((resolve) => (releaseHeld = resolve));
      let firstGone = false;
      const HELD = 4;
      items.reply = (r) =>
        firstGone
          ? { status: 200 }
          : r.json?.body?.after?.id <= HELD
            ? { status: 200, hold: held }
            : { status: 200, delayMs: 1000 };
      const pending = (held: boolean) =>
        items.requests.filter((r) => r.status === 0 && r.json?.body?.after?.id <= HELD === held).length;

      // A live topic stream (SSE) is open too: it must neither hold the drain up nor outlive the process.
      const stream = await fetch(`${base}/topics/items/stream`);
      assert.equal(stream.status, 200);
      let streamBytes = 0;
      const streamEnded = (async () => {
        try {
          for await (const chunk of stream.body!) streamBytes += (chunk as Uint8Array).length;
        } catch {
          // cut by the server: ended all the same
        }
        return Date.now();
      })();

      await db.pool.query('INSERT INTO items SELECT generate_series(1, 200)');
      // One invocation finishes within the grace (0.8 s after it started), the other runs far past it.
      await db.pool.query('INSERT INTO jobs VALUES (1, 800), (2, 60000)');
      await eventually(
        () => pings.requests.length === 2 && pending(true) === HELD && pending(false) >= 1,
        'both handlers running, the held deliveries and others in flight',
        60_000,
      );

      // SIGTERM at once (no await in between): the one-second answers seen pending are still in flight.
      const sendingAtSigterm = items.open;
      const sigtermAt = Date.now();
      first.kill('SIGTERM');
      const probes: Probe[] = [];
      let lateInserted = false;
      let lateInsertAt = 0;
      while (first.running) {
        const [ready, live] = await Promise.all([probe(base, '/readyz'), probe(base, '/livez')]);
        probes.push(ready, live);
        // Rows committed once the process is draining must wait for another process.
        if (!lateInserted && ready.status === 503) {
          lateInserted = true;
          lateInsertAt = Date.now();
          await db.pool.query('INSERT INTO items SELECT generate_series(1001, 1010)');
        }
        await sleep(50);
      }
      const exit = await first.exit(1000);
      const exitMs = Date.now() - sigtermAt;
      firstGone = true;
      assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM: exit code 0');
      assert.ok(exitMs <= GRACE_MS + EXIT_SLACK_MS, `exited ${exitMs} ms after SIGTERM (grace ${GRACE_MS} ms)`);
      const streamEndedMs = (await streamEnded) - sigtermAt;
      assert.ok(streamBytes > 0, 'the stream was live');

      // Readiness while draining: 503 "not ready" naming the drain; liveness stays 200 all along.
      // (The first probes may beat the signal handler; from the first 503 on, it must stay 503.)
      const readyz = probes.filter((p) => p.path === '/readyz' && p.status !== 'refused');
      const draining = readyz.slice(
        Math.max(
          0,
          readyz.findIndex((p) => p.status === 503),
        ),
      );
      assert.ok(draining.length >= 2, `/readyz answered while draining (${draining.length} answers)`);
      for (const p of draining) assert.equal(p.status, 503, `/readyz ${p.at - sigtermAt} ms after SIGTERM`);
      const own = draining.filter((p) => p.body?.status === 'not ready');
      assert.ok(own.length >= 2, `/readyz said "not ready" while draining (${own.length} times)`);
      for (const p of own) assert.match(String(p.body?.checks?.accepting), /draining/);
      // Once the workers have drained the server closes (then answers 503 to everyone, or refuses): until then, 200.
      const drainedAt = draining.filter((p) => p.body?.status === 'not ready').at(-1)!.at;
      const lives = probes.filter((p) => p.path === '/livez' && p.at >= draining[0]!.at && p.at <= drainedAt);
      assert.ok(
        lives.length >= 2 && lives.every((p) => p.status === 200),
        `/livez 200 while draining: ${lives.map((p) => `${p.at - sigtermAt} ms: ${p.status}`).join(', ')}`,
      );
      assert.ok(lateInserted, 'rows were inserted while the process drained');
      const lastAnswer = Math.max(...probes.filter((p) => p.status !== 'refused').map((p) => p.at));

      // Stopped claiming: nothing committed during the drain was sent by the draining process.
      const lateKey = (r: ReceivedRequest) => (r.json?.body?.after?.id as number) > 1000;
      assert.equal(
        items.requests.filter(lateKey).length,
        0,
        'rows committed while draining were not claimed by the draining process',
      );
      // Everything it held was finished or handed back: no lease of the first process is left.
      const { rows: leftover } = await db.pool.query<{ deliveries: number; invocations: number }>(
        `SELECT (SELECT count(*)::int FROM rowcast.deliveries WHERE state = 'in_flight') AS deliveries,
              (SELECT count(*)::int FROM rowcast.invocations WHERE state = 'in_flight') AS invocations`,
      );
      assert.deepEqual(
        leftover[0],
        { deliveries: 0, invocations: 0 },
        'in-flight work finished or released (nothing waits for a lease to expire)',
      );
      const finishedInGrace = items.requests.filter(
        (r) => r.at < sigtermAt && r.status === 200 && r.answeredAt! > sigtermAt,
      ).length;
      const aborted = items.requests.filter((r) => r.status === -3).length;
      const { rows: jobs } = await db.pool.query<{ id: number; state: string; attempts: number }>(
        `SELECT (payload::json -> 'after' ->> 'id')::int AS id, state, attempts FROM rowcast.invocations ORDER BY 1`,
      );
      assert.deepEqual(
        jobs,
        [
          { id: 1, state: 'done', attempts: 1 },
          { id: 2, state: 'pending', attempts: 1 },
        ],
        'the short handler finished within the grace, the long one was released',
      );
      assert.ok(finishedInGrace >= 1, 'deliveries in flight at SIGTERM finished within the grace');
      assert.ok(aborted >= 1, 'deliveries still running at the end of the grace were aborted');

      // A second process delivers what was released and what came in meanwhile.
      releaseHeld();
      const restartAt = Date.now();
      const second = await scenario.spawn(db.pool, db.url);
      let itemIds: number[] = [];
      await eventually(
        async () => {
          itemIds = (await db.pool.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
          return (
            assertDeliveries({ committed: itemIds, requests: items.requests }) &&
            assertDeliveries({ committed: [1, 2], requests: results.requests })
          );
        },
        'the second process to deliver everything',
        60_000,
      );
      const caughtUpMs = Date.now() - restartAt;
      await sleep(1500);
      const itemsResult = assertDeliveries({ committed: itemIds, requests: items.requests });
      const resultsResult = assertDeliveries({ committed: [1, 2], requests: results.requests });
      assert.equal(
        resultsResult.duplicates,
        0,
        'the finished invocation published once; the released one once, on its second attempt',
      );
      assert.deepEqual(await stopChild(second), { code: 0, signal: null });

      reportResult('sigterm-drain', {
        graceMs: GRACE_MS,
        sendingAtSigterm,
        exitCode: exit.code,
        exitAfterSigtermMs: exitMs,
        readyz503Answers: draining.length,
        lastHealthAnswerAfterSigtermMs: lastAnswer - sigtermAt,
        streamEndedAfterSigtermMs: streamEndedMs,
        insertedWhileDrainingAfterMs: lateInsertAt - sigtermAt,
        deliveriesFinishedInGrace: finishedInGrace,
        deliveriesAbortedAndReleased: aborted,
        committed: itemsResult.committed + resultsResult.committed,
        delivered: itemsResult.delivered + resultsResult.delivered,
        duplicates: itemsResult.duplicates + resultsResult.duplicates,
        secondProcessCaughtUpMs: caughtUpMs,
      });
    }),
);

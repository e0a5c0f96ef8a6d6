import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { awsSchema } from '../../src/config/aws-schema.js';
import { HandlerPool } from '../../src/functions/handler-pool.js';
import type { InvocationOutcome } from '../../src/functions/invocation-runner.js';
import { InvocationSnsEndpoint } from '../../src/functions/invocation-sns-endpoint.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase } from '../support/database.js';

// The worker-thread pool with a limit: invocations beyond its threads wait, and a thread that comes free takes
// several in one message and runs them one after another. Each keeps its own deadline and outcome: a timeout or a
// crash fails the one that was running; the rest of its batch never started and runs once, on another thread.

let dir: string;
let log: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rowcast-batches-'));
  log = path.join(dir, 'runs');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const pool = (timeout: number, more: Partial<ConstructorParameters<typeof HandlerPool>[0]> = {}) =>
  new HandlerPool(
    {
      functionName: 'batched',
      modulePath: path.resolve('test/fixtures/handlers/batch-member.ts'),
      exportName: 'handler',
      timeout,
      environment: {},
      memoryLimitMb: 64,
      ...more,
    },
    createLogger('silent'),
  );

const request = (n: number, extra: Record<string, unknown> = {}, startBy?: number) => ({
  id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  payload: JSON.stringify({ n, log, ...extra }),
  attempt: 1,
  clientContext: null,
  trace: null,
  topics: {},
  startBy,
});

const runs = () =>
  readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b);

const thread = (o: InvocationOutcome) => (o.ok ? (JSON.parse(o.result!) as { thread: number }).thread : null);

test('one thread, one batch: a timeout and a crash fail only their own invocation; the others run once each', async () => {
  const handlers = pool(1000);
  try {
    handlers.setLimit(1);
    const signal = new AbortController().signal;
    // The first starts a thread alone; the other six wait for it and go to it in one message when it is free.
    const outcomes = await Promise.all(
      [{}, {}, { block: true }, {}, { crash: true }, {}, {}].map((extra, i) =>
        handlers.invoke(request(i + 1, extra), signal),
      ),
    );
    const summary = outcomes.map((o) => (o.ok ? 'ok' : o.error.type));
    assert.deepEqual(summary, ['ok', 'ok', 'TimeoutError', 'ok', 'HandlerCrashed', 'ok', 'ok']);
    assert.deepEqual(runs(), [1, 2, 3, 4, 5, 6, 7], 'every invocation ran exactly once');
    const [first, second, , fourth, , sixth, seventh] = outcomes.map(thread);
    assert.equal(second, first, 'the batch went to the thread that came free');
    assert.notEqual(fourth, first, 'after the timeout the rest of the batch ran on a new thread');
    assert.notEqual(sixth, fourth, 'after the crash, on another new thread');
    assert.equal(seventh, sixth);
    assert.ok(outcomes.every((o) => o.ok || !o.unstarted));
  } finally {
    await handlers.close();
  }
});

test('queued invocations are handed back unstarted when aborted or past their startBy; a running one is aborted', async () => {
  rmSync(log, { force: true });
  const handlers = pool(5000);
  try {
    handlers.setLimit(1);
    const running = new AbortController();
    const queued = new AbortController();
    const first = handlers.invoke(request(11, { block: true }), running.signal);
    const late = handlers.invoke(request(12, {}, Date.now() - 1), new AbortController().signal);
    const aborted = handlers.invoke(request(13), queued.signal);
    queued.abort();
    const skipped = await aborted;
    assert.deepEqual([skipped.ok, !skipped.ok && skipped.unstarted], [false, true]);
    // Starting the blocker spawned the thread: once loaded, it runs; abort it then.
    for (let i = 0; i < 200 && !readFileSync(log, { flag: 'a+', encoding: 'utf8' }).includes('11'); i++)
      await new Promise((r) => setTimeout(r, 25));
    running.abort();
    const stopped = await first;
    assert.equal(stopped.ok ? 'ok' : stopped.error.type, 'Aborted');
    assert.ok(!stopped.ok && !stopped.unstarted, 'the running one had started');
    const tooLate = await late;
    assert.ok(!tooLate.ok && tooLate.unstarted, 'past its startBy: not started');
    assert.deepEqual(runs(), [11], 'only the running one ran');
  } finally {
    await handlers.close();
  }
});

test('a waiting invocation goes to the thread that is free first, not to a new one still loading', async () => {
  const gate = path.join(dir, 'gate');
  const handlers = pool(5000, {
    modulePath: path.resolve('test/fixtures/handlers/gated-init.ts'),
    environment: { ROWCAST_TEST_INIT_GATE: gate },
  });
  try {
    handlers.setLimit(2);
    const signal = new AbortController().signal;
    const warm = await handlers.invoke(request(31), signal);
    // From now on a new thread cannot load: the second of these starts one, but the warm thread frees first.
    writeFileSync(gate, '');
    const outcomes = await Promise.all([handlers.invoke(request(32), signal), handlers.invoke(request(33), signal)]);
    assert.ok(outcomes.every((o) => o.ok));
    assert.deepEqual(outcomes.map(thread), [thread(warm), thread(warm)], 'both ran on the warm thread');
  } finally {
    rmSync(gate, { force: true });
    await handlers.close();
  }
});

test('a module whose thread dies while loading fails the invocations it was started for, and none waits for ever', async () => {
  const handlers = pool(5000, { modulePath: path.resolve('test/fixtures/handlers/fails-to-load.ts') });
  try {
    handlers.setLimit(2);
    const signal = new AbortController().signal;
    const outcomes = await Promise.all([1, 2, 3].map((n) => handlers.invoke(request(40 + n), signal)));
    for (const o of outcomes) {
      assert.ok(!o.ok && !o.unstarted);
      assert.equal(o.error.type, 'HandlerCrashed');
      assert.match(o.error.message, /exited while loading \(code 3\)/);
    }
  } finally {
    await handlers.close();
  }
});

test("the AWS SDK's publishes in a batch join the invocation that made them, each its own", async () => {
  const db = await createTestDatabase();
  const endpoint = new InvocationSnsEndpoint(db.pool, awsSchema.parse({}), createLogger('silent'));
  const handlers = pool(10_000, {
    modulePath: path.resolve('test/fixtures/sdk-publish/publisher.mjs'),
    environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:notifications' },
    endpoint,
  });
  try {
    await applyConfig(db.pool, { topics: { notifications: {} } });
    await endpoint.listen();
    handlers.setLimit(1);
    const signal = new AbortController().signal;
    // One thread: the first alone, the next seven in one batch, each publishing through the thread's one endpoint.
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        handlers.invoke({ ...request(i + 21), payload: JSON.stringify({ n: i + 21 }) }, signal),
      ),
    );
    for (const [i, o] of outcomes.entries()) {
      assert.ok(o.ok, `invocation ${i + 21} succeeded`);
      assert.deepEqual(
        o.published.map((m) => JSON.parse(m.protocolBodies?.default ?? m.body) as unknown),
        [{ n: i + 21 }],
        `invocation ${i + 21} has its own publish, and only it`,
      );
    }
  } finally {
    await handlers.close();
    await endpoint.close();
    await db.drop();
  }
});

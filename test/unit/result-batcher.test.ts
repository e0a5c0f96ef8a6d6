import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { ResultBatcher } from '../../src/queue/result-batcher.js';

function batcher(options: { size: number; delayMs: number; failFirst?: number; sized?: boolean }) {
  const batches: number[][] = [];
  let failures = options.failFirst ?? 0;
  let out = '';
  const results = new ResultBatcher<number>({
    write: async (batch) => {
      if (failures > 0) {
        failures--;
        throw new Error('connection terminated');
      }
      batches.push(batch);
    },
    log: createLogger('error', { write: (line: string) => void (out += line) }),
    what: 'test',
    size: options.size,
    delayMs: options.delayMs,
    // Each result is its own size in bytes.
    ...(options.sized ? { sizeOf: (n: number) => n } : {}),
  });
  return { results, batches, logged: () => out };
}

describe('ResultBatcher (the group commit of delivery and invocation results)', () => {
  test('results of one tick go in one batch, written after the tick', async () => {
    const { results, batches } = batcher({ size: 200, delayMs: 0 });
    for (const n of [1, 2, 3]) results.add(n);
    assert.deepEqual(batches, [], 'nothing is written within the tick');
    await new Promise((r) => setImmediate(r));
    await results.drain();
    assert.deepEqual(batches, [[1, 2, 3]]);
  });

  test('a batch holds at most `size` results, in the order they came', async () => {
    const { results, batches } = batcher({ size: 2, delayMs: 60_000 });
    for (const n of [1, 2, 3, 4, 5]) results.add(n);
    await results.drain();
    assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
  });

  test('a batch that fails to write is kept, logged and written later, ahead of newer results', async () => {
    const { results, batches, logged } = batcher({ size: 10, delayMs: 0, failFirst: 1 });
    results.add(1);
    results.add(2);
    await results.flush();
    assert.deepEqual(batches, [], 'the first write failed');
    assert.match(logged(), /recording test results failed; retrying/);
    results.add(3);
    await results.drain();
    assert.deepEqual(batches.flat(), [1, 2, 3]);
  });

  test('the backlog counts the bytes its results hold until they are written, failed writes included', async () => {
    const { results, batches } = batcher({ size: 2, delayMs: 60_000, failFirst: 1, sized: true });
    for (const n of [100, 20, 3]) results.add(n);
    assert.equal(results.backlogBytes, 123);
    await results.flush();
    assert.deepEqual(batches, [], 'the first write failed');
    assert.equal(results.backlogBytes, 123, 'a failed batch still holds its bytes');
    await results.drain();
    assert.deepEqual(batches, [[100, 20], [3]]);
    assert.equal(results.backlogBytes, 0);
    const unsized = batcher({ size: 2, delayMs: 60_000 }).results;
    unsized.add(5);
    assert.equal(unsized.backlogBytes, 0, 'without sizeOf, no bytes');
  });
});

describe('ResultBatcher under load and failure', () => {
  const log = createLogger('silent');

  test('results that come while a batch is written queue one write behind it, not one each', async () => {
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const batches: number[] = [];
    const results = new ResultBatcher<number>({
      write: async (batch) => {
        batches.push(batch.length);
        await blocked;
      },
      log,
      what: 'test',
      size: 200,
      delayMs: 0,
    });
    for (let n = 0; n < 200; n++) results.add(n);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(batches, [200], 'the first batch is being written');
    // Every result past a full batch asks for a write: each ask made a promise that waited its turn.
    let promises = 0;
    const hook = createHook({ init: (_id, type) => void (type === 'PROMISE' && promises++) }).enable();
    for (let n = 0; n < 10_000; n++) results.add(n);
    hook.disable();
    assert.ok(promises <= 2, `${promises} promises made by 10,000 results`);
    assert.equal(results.backlog, 10_200);
    release();
    await results.drain();
    assert.equal(
      batches.reduce((a, b) => a + b, 0),
      10_200,
    );
    assert.equal(results.backlog, 0);
  });

  test('after a failed write the next try waits its delay, though results keep coming', async () => {
    const tries: number[] = [];
    let second!: () => void;
    const retried = new Promise<void>((r) => (second = r));
    const results = new ResultBatcher<number>({
      write: async () => {
        tries.push(Date.now());
        if (tries.length === 1) throw new Error('connection terminated');
        second();
      },
      log,
      what: 'test',
      size: 1,
      delayMs: 0,
    });
    results.add(1);
    await new Promise((r) => setImmediate(r));
    assert.equal(tries.length, 1, 'the first write failed');
    for (let n = 2; n <= 50; n++) results.add(n);
    await retried;
    assert.ok(tries[1]! - tries[0]! >= 400, `tried again ${tries[1]! - tries[0]!} ms after the failure`);
    await results.drain();
    assert.equal(results.backlog, 0);
  });
});

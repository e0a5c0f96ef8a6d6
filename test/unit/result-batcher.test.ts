import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { ResultBatcher } from '../../src/queue/result-batcher.js';

function batcher(options: { size: number; delayMs: number; failFirst?: number }) {
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
});

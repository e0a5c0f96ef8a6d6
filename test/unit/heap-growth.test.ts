import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heapFlagGiven } from '../../src/app/cli/heap-growth.js';

test('rowcast start bounds heap growth unless the operator already set a heap flag', () => {
  assert.equal(heapFlagGiven([], undefined), false);
  assert.equal(heapFlagGiven(['--enable-source-maps'], '--trace-warnings'), false);
  assert.equal(heapFlagGiven(['--max-old-space-size=2048'], undefined), true);
  assert.equal(heapFlagGiven([], '--max_old_space_size=512 --trace-warnings'), true);
  assert.equal(heapFlagGiven(['--heap-growing-percent=30'], undefined), true);
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deliveryPolicySchema } from '../../src/config/subscription-schema.js';
import { backoffDelay, decideAfterFailure, parseRetryAfter } from '../../src/model/retry-policy.js';

const policy = deliveryPolicySchema.parse({ maxAttempts: 5, minDelay: '1s', maxDelay: '10s', maxRetryAfter: '30s' });

describe('retry policy', () => {
  test('backoff doubles per attempt, capped, jittered within the upper half', () => {
    assert.equal(
      backoffDelay(1, policy, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(1, policy, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(2, policy, () => 1),
      2000,
    );
    assert.equal(
      backoffDelay(3, policy, () => 1),
      4000,
    );
    assert.equal(
      backoffDelay(5, policy, () => 1),
      10_000,
      'capped at maxDelay',
    );
    assert.equal(
      backoffDelay(40, policy, () => 0),
      5000,
      'no overflow far out',
    );
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, policy);
      assert.ok(d >= 1000 && d <= 2000, `${d} within [1000, 2000]`);
    }
  });

  test('dead after maxAttempts, counting the failed attempt', () => {
    assert.deepEqual(
      decideAfterFailure(4, policy, undefined, () => 1),
      { state: 'pending', delayMs: 8000 },
    );
    assert.deepEqual(decideAfterFailure(5, policy), { state: 'dead' });
    assert.deepEqual(decideAfterFailure(6, policy), { state: 'dead' });
  });

  test('Retry-After wins over backoff, up to maxRetryAfter', () => {
    assert.deepEqual(decideAfterFailure(1, policy, 7000), { state: 'pending', delayMs: 7000 });
    assert.deepEqual(decideAfterFailure(1, policy, 3_600_000), { state: 'pending', delayMs: 30_000 });
    assert.deepEqual(decideAfterFailure(5, policy, 1000), { state: 'dead' }, 'the attempt budget still applies');
  });

  test('Retry-After: 0 or a past date waits at least minDelay, so the attempts are not burnt at once', () => {
    const now = Date.parse('Fri, 27 Nov 2026 10:00:00 GMT');
    assert.deepEqual(decideAfterFailure(1, policy, 0), { state: 'pending', delayMs: 1000 });
    assert.deepEqual(decideAfterFailure(1, policy, parseRetryAfter('0', now)), { state: 'pending', delayMs: 1000 });
    assert.deepEqual(decideAfterFailure(2, policy, parseRetryAfter('Fri, 27 Nov 2026 09:00:00 GMT', now)), {
      state: 'pending',
      delayMs: 1000,
    });
    assert.deepEqual(decideAfterFailure(1, policy, 400), { state: 'pending', delayMs: 1000 }, 'below minDelay');
    assert.deepEqual(decideAfterFailure(1, policy, -5), { state: 'pending', delayMs: 1000 });
    const tight = { ...policy, minDelay: 60_000, maxRetryAfter: 10_000 };
    assert.deepEqual(
      decideAfterFailure(1, tight, 0),
      { state: 'pending', delayMs: 60_000 },
      'minDelay is the floor even above maxRetryAfter',
    );
  });

  test('Retry-After parses seconds and HTTP dates', () => {
    const now = Date.parse('2026-11-27T10:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 10:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 09:00:00 GMT', now), 0, 'a date in the past means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

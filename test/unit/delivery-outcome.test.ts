import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { functionSchema } from '../../src/config/function-schema.js';
import { deliveryPolicySchema } from '../../src/config/subscription-schema.js';
import { decideBodySize, decideOutcome, decideSize } from '../../src/model/delivery-outcome.js';
import { decideInvocationFailure, tooOldToRun } from '../../src/model/invocation-outcome.js';
import { parseRetryAfter } from '../../src/model/retry-policy.js';

const policy = deliveryPolicySchema.parse({ maxAttempts: 3, minDelay: '1s', maxDelay: '10s', maxRetryAfter: '30s' });
const sub = { name: 'orders-hook', deadLetterTopic: null };
const withDeadLetter = { name: 'orders-hook', deadLetterTopic: 'orders-dead' };
const top = () => 1;

describe('decideOutcome (a delivery after an attempt)', () => {
  test('done is done, whatever the attempt', () => {
    assert.deepEqual(decideOutcome({ kind: 'done', status: 200 }, 1, policy, sub), { action: 'done' });
    assert.deepEqual(
      decideOutcome({ kind: 'done' }, 3, policy, sub),
      { action: 'done' },
      'the last attempt succeeding is done, not dead',
    );
  });

  test('a failure with attempts left is retried with backoff', () => {
    assert.deepEqual(decideOutcome({ kind: 'retry', error: 'HTTP 500' }, 1, policy, sub, top), {
      action: 'retry',
      delayMs: 1000,
      error: 'HTTP 500',
    });
    assert.deepEqual(decideOutcome({ kind: 'retry', error: 'HTTP 500' }, 2, policy, sub, top), {
      action: 'retry',
      delayMs: 2000,
      error: 'HTTP 500',
    });
    assert.deepEqual(
      decideOutcome({ kind: 'retry', error: 'HTTP 500' }, 1, policy, sub, () => 0),
      { action: 'retry', delayMs: 500, error: 'HTTP 500' },
      'jitter in the upper half',
    );
  });

  test('the last attempt failing is dead, with the attempts counted in its error and the dead-letter topic', () => {
    assert.deepEqual(decideOutcome({ kind: 'retry', error: 'HTTP 500' }, 3, policy, sub), {
      action: 'dead',
      error: 'HTTP 500 (after 3 attempts)',
      deadLetterTopic: null,
    });
    assert.deepEqual(decideOutcome({ kind: 'retry', error: 'HTTP 500' }, 3, policy, withDeadLetter), {
      action: 'dead',
      error: 'HTTP 500 (after 3 attempts)',
      deadLetterTopic: 'orders-dead',
    });
    assert.equal(
      decideOutcome({ kind: 'retry', error: 'x' }, 4, policy, sub).action,
      'dead',
      'past the last attempt (maxAttempts lowered meanwhile)',
    );
    const once = deliveryPolicySchema.parse({ maxAttempts: 1 });
    assert.equal(
      decideOutcome({ kind: 'retry', error: 'x' }, 1, once, sub).action,
      'dead',
      'maxAttempts 1: no retry at all',
    );
  });

  test('Retry-After is honoured, floored at minDelay and capped at maxRetryAfter (not at maxDelay)', () => {
    const retry = (retryAfterMs: number | undefined, attempt = 1) =>
      decideOutcome({ kind: 'retry', error: 'HTTP 429', status: 429, retryAfterMs }, attempt, policy, sub, top);
    assert.deepEqual(retry(7000), { action: 'retry', delayMs: 7000, error: 'HTTP 429' });
    assert.deepEqual(
      retry(0),
      { action: 'retry', delayMs: 1000, error: 'HTTP 429' },
      'Retry-After: 0 waits minDelay, not zero',
    );
    assert.deepEqual(
      retry(20_000),
      { action: 'retry', delayMs: 20_000, error: 'HTTP 429' },
      'over maxDelay but within maxRetryAfter',
    );
    assert.deepEqual(
      retry(3_600_000),
      { action: 'retry', delayMs: 30_000, error: 'HTTP 429' },
      'capped at maxRetryAfter',
    );
    assert.equal(retry(7000, 3).action, 'dead', 'no attempts left: Retry-After does not add one');
  });

  test('Retry-After as seconds, an HTTP date and a past date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const retry = (header: string) =>
      decideOutcome(
        { kind: 'retry', error: 'HTTP 503', retryAfterMs: parseRetryAfter(header, now) },
        1,
        policy,
        sub,
        top,
      );
    assert.deepEqual(retry('5'), { action: 'retry', delayMs: 5000, error: 'HTTP 503' });
    assert.deepEqual(retry('Thu, 01 Jan 2026 00:00:12 GMT'), { action: 'retry', delayMs: 12_000, error: 'HTTP 503' });
    assert.deepEqual(
      retry('Wed, 31 Dec 2025 23:00:00 GMT'),
      { action: 'retry', delayMs: 1000, error: 'HTTP 503' },
      'a past date waits minDelay',
    );
    assert.deepEqual(retry('soon'), { action: 'retry', delayMs: 1000, error: 'HTTP 503' }, 'unparsable: plain backoff');
  });

  test('410 Gone disables the subscription, with or without a disableAfter policy, even on the last attempt', () => {
    const gone = {
      kind: 'disable' as const,
      error: 'HTTP 410 (the endpoint is gone; subscription disabled)',
      status: 410,
    };
    const expected = { action: 'disable', error: gone.error };
    assert.deepEqual(decideOutcome(gone, 1, policy, sub), expected);
    assert.deepEqual(decideOutcome(gone, 3, policy, sub), expected, 'not dead: the delivery waits for a resume');
    const withDisableAfter = { ...policy, disableAfter: { failingFor: 5 * 86_400_000, deadDeliveries: null } };
    assert.deepEqual(decideOutcome(gone, 1, withDisableAfter, withDeadLetter), expected);
  });

  test('a dead outcome (e.g. oversize, a permanent sink error) is dead at once', () => {
    const error = decideSize(300_000, { maxMessageSize: 262_144, largeMessages: 'reject' }, 'orders');
    assert.equal(error.send, 'none');
    const dead = decideOutcome({ kind: 'dead', error: (error as { error: string }).error }, 1, policy, withDeadLetter);
    assert.deepEqual(dead, {
      action: 'dead',
      error: (error as { error: string }).error,
      deadLetterTopic: 'orders-dead',
    });
  });

  test('not loaded in this process: handed back, not counted', () => {
    const release = { action: 'release', error: 'subscription orders-hook is not loaded in this process' };
    assert.deepEqual(decideOutcome({ kind: 'unloaded' }, 1, undefined, sub), release);
    assert.deepEqual(
      decideOutcome({ kind: 'unloaded' }, 3, policy, sub),
      release,
      'even on what would be the last attempt',
    );
    assert.deepEqual(
      decideOutcome({ kind: 'retry', error: 'x' }, 1, undefined, sub),
      release,
      'no policy to decide a retry by',
    );
  });
});

describe('decideSize (a message under its topic size rules)', () => {
  const reject = { maxMessageSize: 1024, largeMessages: 'reject' as const };
  test('up to the limit it is sent as it is', () => {
    assert.deepEqual(decideSize(0, reject, 't'), { send: 'message' });
    assert.deepEqual(decideSize(1024, reject, 't'), { send: 'message' });
    assert.deepEqual(decideSize(1024, { ...reject, largeMessages: 'claim-check' }, 't'), { send: 'message' });
  });
  test('over it: a claim-check link, or dead with an error naming the topic, the sizes and the fix', () => {
    assert.deepEqual(decideSize(1025, { ...reject, largeMessages: 'claim-check' }, 't'), { send: 'claim-check' });
    const over = decideSize(1025, reject, 'orders');
    assert.equal(over.send, 'none');
    assert.match(
      (over as { error: string }).error,
      /1025 bytes is over topic orders's maxMessageSize \(1024 bytes\): raise it or set largeMessages: 'claim-check'/,
    );
  });
});

describe('decideInvocationFailure (a function invocation after a failed run)', () => {
  const fn = functionSchema.parse({
    handler: 'x.js',
    maxAttempts: 3,
    minDelay: '1s',
    maxDelay: '10s',
    maxEventAge: '1m',
  });
  const inv = (attempt: number, ageMs = 0, synchronous = false) => ({ attempt, ageMs, synchronous });
  test('retried with backoff while attempts are left', () => {
    assert.deepEqual(decideInvocationFailure(inv(1), fn, top), { action: 'retry', delayMs: 1000 });
    assert.deepEqual(decideInvocationFailure(inv(2), fn, top), { action: 'retry', delayMs: 2000 });
  });
  test('the last attempt failing: RetriesExhausted', () => {
    assert.deepEqual(decideInvocationFailure(inv(3), fn, top), { action: 'fail', condition: 'RetriesExhausted' });
  });
  test('a synchronous caller gets the error at once', () => {
    assert.deepEqual(decideInvocationFailure(inv(1, 0, true), fn, top), {
      action: 'fail',
      condition: 'RetriesExhausted',
    });
  });
  test('a retry that would start after maxEventAge: EventAgeExceeded (at the boundary it still retries)', () => {
    assert.deepEqual(
      decideInvocationFailure(inv(1, 59_000), fn, top),
      { action: 'retry', delayMs: 1000 },
      'exactly at maxEventAge',
    );
    assert.deepEqual(decideInvocationFailure(inv(1, 59_001), fn, top), {
      action: 'fail',
      condition: 'EventAgeExceeded',
    });
  });
  test('an invocation older than maxEventAge is not run', () => {
    assert.equal(tooOldToRun(60_000, fn), false);
    assert.equal(tooOldToRun(60_001, fn), true);
  });
});

describe('decideBodySize (a body as text under its topic size rules)', () => {
  const limits = { maxMessageSize: 12, largeMessages: 'reject' as const };
  test('its UTF-8 bytes count, not its length, whether or not it is short enough to go unmeasured', () => {
    assert.deepEqual(decideBodySize('€€€€', limits, 't'), { send: 'message' }, '4 units, 12 bytes');
    assert.equal(decideBodySize('€€€€a', limits, 't').send, 'none', '5 units, 13 bytes');
    assert.deepEqual(decideBodySize('aaaaaaaaaaaa', limits, 't'), { send: 'message' }, '12 units, 12 bytes');
    assert.match((decideBodySize('😀😀😀a', limits, 't') as { error: string }).error, /13 bytes is over topic t's/);
  });
});

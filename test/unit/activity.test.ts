import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Activity } from '../../src/observability/activity.js';
import { observe } from '../../src/observability/observe.js';

const attempt = (outcome: 'delivered' | 'failed' | 'dead', latencyMs: number | null, subscription = 's') =>
  observe.emit('delivery:attempted', {
    deliveryId: '1',
    messageId: 'm',
    subscription,
    protocol: 'http',
    attempt: 1,
    outcome,
    status: 200,
    durationMs: 1,
    latencyMs,
  });

test('activity: per-step counts, latency percentiles from the histogram, per-minute rates', () => {
  const activity = new Activity();
  try {
    observe.emit('events:routed', { events: 5, deliveries: 5, invocations: 0 });
    attempt('delivered', 3);
    attempt('delivered', 40);
    attempt('delivered', 900);
    attempt('failed', null);
    attempt('dead', null, 'other');
    observe.emit('invocation:finished', {
      invocationId: 'i',
      function: 'f',
      attempt: 1,
      outcome: 'retry',
      durationMs: 5,
    });
    observe.emit('invocation:finished', {
      invocationId: 'i',
      function: 'f',
      attempt: 2,
      outcome: 'done',
      durationMs: 5,
    });

    const series = activity.series(60_000, 10_000);
    assert.equal(series.length, 6);
    const sum = (k: 'events' | 'delivered' | 'failed') => series.reduce((a, p) => a + p[k], 0);
    assert.deepEqual([sum('events'), sum('delivered'), sum('failed')], [5, 3, 2]);
    assert.equal(Date.parse(series[1]!.t) - Date.parse(series[0]!.t), 10_000);
    // One point per minute: all three deliveries in the current one (barring a minute boundary within this test).
    const minute = activity.series(60_000, 60_000);
    assert.equal(minute.length, 1);
    assert.equal(minute[0]!.delivered, 3);
    assert.equal(minute[0]!.latencyP50Ms, 50, 'the bucket bound holding the median (40 ms)');
    assert.equal(minute[0]!.latencyP99Ms, 1000);
    assert.ok(series.every((p) => (p.delivered === 0 ? p.latencyP50Ms === null : p.latencyP99Ms !== null)));

    assert.deepEqual(activity.subscriptionRates('s'), { deliveredPerMinute: 3, errorsPerMinute: 1 });
    assert.deepEqual(activity.subscriptionRates('other'), { deliveredPerMinute: 0, errorsPerMinute: 1 });
    assert.deepEqual(activity.functionRates('f'), { invocationsPerMinute: 2, errorsPerMinute: 1 });
    assert.deepEqual(activity.functionRates('nope'), { invocationsPerMinute: 0, errorsPerMinute: 0 });
  } finally {
    activity.close();
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LazySink } from '../../src/delivery/sinks/lazy-sink.js';
import type { DeliveryAttempt, Sink } from '../../src/model/sink.js';

const attempt = { subscription: { protocol: 'amqp' } } as DeliveryAttempt;

function counting(): Sink & { sent: number; closed: number } {
  return {
    sent: 0,
    closed: 0,
    async send() {
      this.sent++;
      return { kind: 'done' };
    },
    async close() {
      this.closed++;
    },
  };
}

test('a lazy sink is made once, at its first delivery, and closes only what it made', async () => {
  const inner = counting();
  let loads = 0;
  const lazy = new LazySink(async () => (loads++, inner));
  assert.equal(loads, 0);
  const signal = new AbortController().signal;
  const outcomes = await Promise.all([lazy.send(attempt, signal), lazy.send(attempt, signal)]);
  assert.deepEqual(outcomes, [{ kind: 'done' }, { kind: 'done' }]);
  assert.equal(loads, 1);
  assert.equal(inner.sent, 2);
  await lazy.close();
  assert.equal(inner.closed, 1);

  let made = false;
  await new LazySink(async () => ((made = true), counting())).close();
  assert.equal(made, false, 'closing a sink never used loads nothing');
});

test('a module that cannot be loaded is a retry that names the protocol, and is tried again', async () => {
  let loads = 0;
  const inner = counting();
  const lazy = new LazySink(async () => {
    if (++loads === 1) throw new Error("Cannot find package 'amqplib'");
    return inner;
  });
  const signal = new AbortController().signal;
  assert.deepEqual(await lazy.send(attempt, signal), {
    kind: 'retry',
    error: "loading the amqp sink failed: Cannot find package 'amqplib'",
  });
  assert.deepEqual(await lazy.send(attempt, signal), { kind: 'done' });
  assert.equal(loads, 2);
});

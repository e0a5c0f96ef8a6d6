import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type {
  DeliveryAttempt,
  OutboundMessage,
  SendOutcome,
  Sink,
  SubscriptionSettings,
} from '../../src/model/sink.js';
import type { TcpProxy } from './tcp-broker.js';
import { patient } from './patience.js';

/** Deliveries as the delivery worker hands them to a sink, and the checks the sink tests have in common. */

/** A message of topic "orders", a fresh id each time; the body has a number no float can hold, to check it is kept byte for byte. */
export function outboundMessage(overrides: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: randomUUID(),
    topic: 'orders',
    subject: 'Order created',
    body: '{"order":{"id":42,"total":"12345678901234567890.5"}}',
    contentType: 'application/json',
    attributes: { op: 'INSERT' },
    timestamp: new Date().toISOString(),
    trace: null,
    ...overrides,
  };
}

// The timeout is a guard, stretched with the machine's load (patience.ts): 200 concurrent MQTT sends at load 14 had
// PUBACKs later than 2 s, and the test read the retries as a failure to share one connection. Tests of the timeout
// itself set their own.
export const POLICY = { maxAttempts: 3, minDelay: 100, maxDelay: 1000, timeout: patient(2000), maxRetryAfter: 1000 };

export type AttemptOf = (
  options: unknown,
  msg?: OutboundMessage,
  settings?: Partial<SubscriptionSettings>,
) => DeliveryAttempt;

/** Builds the first attempt of a delivery to the subscription "to-<protocol>" with these options (and settings). */
export function attemptsFor(protocol: string, message: () => OutboundMessage = outboundMessage): AttemptOf {
  return (options, msg = message(), settings = {}) => ({
    deliveryId: randomUUID(),
    attempt: 1,
    message: msg,
    subscription: {
      name: `to-${protocol}`,
      topic: msg.topic,
      protocol,
      endpoint: '',
      secret: null,
      state: 'active',
      deadLetterTopic: null,
      settings: { format: 'envelope', headers: {}, deliveryPolicy: POLICY, maxConcurrency: 8, options, ...settings },
    },
  });
}

export const noAbort = () => new AbortController().signal;
export const errorOf = (outcome: SendOutcome): string => ('error' in outcome ? outcome.error : '');

/** Sends and checks the outcome is a retry with this error (a string: exactly it), sent within withinMs. */
export async function assertRetry(
  sink: Sink,
  attempt: DeliveryAttempt,
  error: string | RegExp,
  withinMs: number,
  message?: string,
): Promise<SendOutcome> {
  const started = Date.now();
  const outcome = await sink.send(attempt, noAbort());
  if (typeof error === 'string') {
    assert.deepEqual(outcome, { kind: 'retry', error });
  } else {
    assert.equal(outcome.kind, 'retry');
    assert.match(errorOf(outcome), error);
  }
  assert.ok(Date.now() - started < withinMs, message);
  return outcome;
}

/** Each of these options makes a delivery dead, with an error that matches. */
export async function assertDead(
  sink: Sink,
  attempt: AttemptOf,
  cases: Array<[options: unknown, error: RegExp]>,
): Promise<void> {
  for (const [options, error] of cases) {
    const outcome = await sink.send(attempt(options), noAbort());
    assert.equal(outcome.kind, 'dead', JSON.stringify(options));
    assert.match(errorOf(outcome), error);
  }
}

/** A send whose signal is aborted (rowcast shutting down) is a retry. */
export async function assertAbortedIsRetry(sink: Sink, attempt: DeliveryAttempt): Promise<void> {
  const controller = new AbortController();
  controller.abort();
  assert.deepEqual(await sink.send(attempt, controller.signal), {
    kind: 'retry',
    error: 'aborted: rowcast is shutting down',
  });
}

/** Runs with an environment variable set, and unsets it after. */
export async function withEnv(variable: string, value: string, run: () => Promise<void>): Promise<void> {
  process.env[variable] = value;
  try {
    await run();
  } finally {
    delete process.env[variable];
  }
}

/**
 * A broker restart, through the proxy: a send is done; while the broker is away a send is a retry; once it is back a
 * send is done again and `arrived` looks for that last message at the broker. Closes the sink and the proxy.
 */
export async function assertReconnectsAfterRestart(
  sink: Sink,
  proxy: TcpProxy,
  attempt: () => DeliveryAttempt,
  arrived: { first?: () => Promise<unknown>; last: (msg: OutboundMessage) => Promise<unknown> },
): Promise<void> {
  try {
    assert.deepEqual(await sink.send(attempt(), noAbort()), { kind: 'done' });
    await arrived.first?.();

    await proxy.stop(); // the broker "goes away": connections drop, new ones are refused
    assert.equal((await sink.send(attempt(), noAbort())).kind, 'retry');

    await proxy.listen(); // and comes back
    const last = attempt();
    assert.deepEqual(await sink.send(last, noAbort()), { kind: 'done' });
    await arrived.last(last.message);
  } finally {
    await sink.close();
    await proxy.stop();
  }
}

import type { Sink } from '../../model/sink.js';
import type { Pool } from '../../store/pool.js';
import type { SnsEnvelopes } from '../sns-envelope/sns-envelopes.js';
import { FunctionSink } from './function/function-sink.js';
import { HttpSink } from './http/http-sink.js';
import { LazySink } from './lazy-sink.js';
import { LogSink } from './log/log-sink.js';

/** What a sink may need from the process that runs it. */
export interface SinkContext {
  pool: Pool;
  /** Webhooks may go to private and loopback addresses (runtime.allowPrivateEndpoints). */
  allowPrivateEndpoints: boolean;
  /** A function subscription queued an invocation (the runtime wakes its function worker). */
  onInvocationQueued(): void;
  /** Renders SNS envelopes (format 'sns'); null until the runtime has made one. */
  snsEnvelopes(): SnsEnvelopes | null;
}

/** A protocol's sink: the subscription protocols it serves, and how the delivery worker makes it (once per worker). */
export interface SinkFactory {
  protocols: readonly string[];
  create(context: SinkContext): Sink;
}

/**
 * The protocols rowcast delivers to (docs/subscriptions.md); one folder per sink beside this file. The email and
 * broker sinks load their client libraries at their first delivery: a process that never delivers to a broker
 * does not hold them (test/e2e/lazy-libraries.test.ts).
 */
export const BUILT_IN_SINKS: readonly SinkFactory[] = [
  {
    protocols: ['http', 'https'],
    create: (c) => new HttpSink({ allowPrivateEndpoints: c.allowPrivateEndpoints, snsEnvelopes: c.snsEnvelopes }),
  },
  { protocols: ['function'], create: (c) => new FunctionSink(c.pool, () => c.onInvocationQueued()) },
  {
    protocols: ['email', 'email-json'],
    create: (c) => new LazySink(async () => new (await import('./email/email-sink.js')).EmailSink(c.snsEnvelopes)),
  },
  { protocols: ['nats'], create: () => new LazySink(async () => new (await import('./nats/nats-sink.js')).NatsSink()) },
  { protocols: ['amqp'], create: () => new LazySink(async () => new (await import('./amqp/amqp-sink.js')).AmqpSink()) },
  {
    protocols: ['redis'],
    create: () => new LazySink(async () => new (await import('./redis/redis-sink.js')).RedisSink()),
  },
  { protocols: ['mqtt'], create: () => new LazySink(async () => new (await import('./mqtt/mqtt-sink.js')).MqttSink()) },
  { protocols: ['log'], create: () => new LogSink() },
];

/** One sink per factory, keyed by each protocol it serves; a protocol named twice is a programming error. */
export function createSinks(factories: readonly SinkFactory[], context: SinkContext): Map<string, Sink> {
  const sinks = new Map<string, Sink>();
  for (const factory of factories) {
    const sink = factory.create(context);
    for (const protocol of factory.protocols) {
      if (sinks.has(protocol)) throw new Error(`two sinks serve protocol "${protocol}"; register each protocol once`);
      sinks.set(protocol, sink);
    }
  }
  return sinks;
}

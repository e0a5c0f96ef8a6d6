import type { Sink } from '../../model/sink.js';
import type { Pool } from '../../store/pool.js';
import type { SnsEnvelopes } from '../sns-envelope/sns-envelopes.js';
import { AmqpSink } from './amqp/amqp-sink.js';
import { EmailSink } from './email/email-sink.js';
import { FunctionSink } from './function/function-sink.js';
import { HttpSink } from './http/http-sink.js';
import { LogSink } from './log/log-sink.js';
import { MqttSink } from './mqtt/mqtt-sink.js';
import { NatsSink } from './nats/nats-sink.js';
import { RedisSink } from './redis/redis-sink.js';

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

/** The protocols rowcast delivers to (docs/subscriptions.md); one folder per sink beside this file. */
export const BUILT_IN_SINKS: readonly SinkFactory[] = [
  {
    protocols: ['http', 'https'],
    create: (c) => new HttpSink({ allowPrivateEndpoints: c.allowPrivateEndpoints, snsEnvelopes: c.snsEnvelopes }),
  },
  { protocols: ['function'], create: (c) => new FunctionSink(c.pool, () => c.onInvocationQueued()) },
  { protocols: ['email', 'email-json'], create: (c) => new EmailSink(c.snsEnvelopes) },
  { protocols: ['nats'], create: () => new NatsSink() },
  { protocols: ['amqp'], create: () => new AmqpSink() },
  { protocols: ['redis'], create: () => new RedisSink() },
  { protocols: ['mqtt'], create: () => new MqttSink() },
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

import { randomUUID } from 'node:crypto';

/** The machine's brokers (shared/DESIGN.md); each variable points a test run elsewhere. */
export const BROKERS = {
  amqp: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  mqtt: process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883',
  nats: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
};

/**
 * A name for this run of a test file (pid and a random part), for the streams, exchanges, topics and keys it
 * creates: files running side by side, and what an aborted run left behind, never share one.
 */
export function runId(separator = '-'): string {
  return `${process.pid}${separator}${randomUUID().slice(0, 8)}`;
}

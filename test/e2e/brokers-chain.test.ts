/**
 * Captured changes through the whole chain into each broker, configured as users configure them: the brokers on
 * this machine (NATS JetStream, RabbitMQ, Redis, Mosquitto) receive the message with its stable id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { connect as amqpConnect, type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { getDelivery, type RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { BROKERS, runId } from '../support/brokers.js';
import { patient } from '../support/patience.js';

const run = runId('_');
let db: TestDatabase;
let rowcast: RowcastRuntime;
let nc: NatsConnection;
let amqp: ChannelModel;
let redis: Redis;
let mqttClient: MqttClient;
const got = { nats: [] as any[], amqp: [] as any[], mqtt: [] as any[] };

before(async () => {
  db = await createTestDatabase();
  nc = await natsConnect({ servers: BROKERS.nats });
  await (await jetstreamManager(nc)).streams.add({ name: `chain_${run}`, subjects: [`chain.${run}.>`] });
  const js = jetstream(nc);
  void (async () => {
    const consumer = await js.consumers.get(`chain_${run}`);
    for await (const m of await consumer.consume()) {
      got.nats.push({ msgId: m.headers?.get('Nats-Msg-Id'), body: m.json() });
      m.ack();
    }
  })().catch(() => {});
  amqp = await amqpConnect(BROKERS.amqp);
  const ch = await amqp.createChannel();
  await ch.assertExchange(`chain-${run}`, 'topic', { durable: false, autoDelete: true });
  const { queue } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(queue, `chain-${run}`, '#');
  await ch.consume(
    queue,
    (m) =>
      m &&
      got.amqp.push({
        messageId: m.properties.messageId,
        persistent: m.properties.deliveryMode === 2,
        body: JSON.parse(m.content.toString()),
      }),
    { noAck: true },
  );
  redis = new Redis(BROKERS.redis);
  mqttClient = await mqtt.connectAsync(BROKERS.mqtt);
  await mqttClient.subscribeAsync(`chain/${run}/#`, { qos: 1 });
  mqttClient.on('message', (_topic, payload) => got.mqtt.push(JSON.parse(payload.toString())));

  await db.pool.query(`CREATE TABLE parcels (id int PRIMARY KEY, status text)`);
  await applyConfig(db.pool, {
    topics: { parcels: {} },
    captures: { parcels: { table: 'parcels', topic: 'parcels' } },
    subscriptions: {
      nats: { topic: 'parcels', protocol: 'nats', options: { subject: `chain.${run}.{topic}` } },
      amqp: {
        topic: 'parcels',
        protocol: 'amqp',
        options: { exchange: `chain-${run}`, routingKey: 'rowcast.{topic}' },
      },
      redis: { topic: 'parcels', protocol: 'redis', options: { stream: `chain:${run}:{topic}`, maxLen: 1000 } },
      mqtt: { topic: 'parcels', protocol: 'mqtt', options: { topic: `chain/${run}/{topic}`, qos: 1 } },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await (await jetstreamManager(nc)).streams.delete(`chain_${run}`).catch(() => {});
  await nc?.close();
  await amqp?.close();
  await redis?.del(`chain:${run}:parcels`);
  redis?.disconnect();
  await mqttClient?.endAsync();
  await db?.drop();
});

test(
  'one captured change reaches NATS, RabbitMQ, Redis and MQTT, acknowledged, with the same message id',
  { timeout: patient(60_000) },
  async () => {
    await db.pool.query(`INSERT INTO parcels VALUES (7, 'shipped')`);
    const entries = async () => redis.xrange(`chain:${run}:parcels`, '-', '+');
    await eventually(
      async () => got.nats.length >= 1 && got.amqp.length >= 1 && got.mqtt.length >= 1 && (await entries()).length >= 1,
      'all four brokers',
      30_000,
    );
    const ids = new Set<string>([
      got.nats[0].msgId,
      got.nats[0].body.id,
      got.amqp[0].messageId,
      got.amqp[0].body.id,
      got.mqtt[0].id,
      (await entries())[0]![1][(await entries())[0]![1].indexOf('id') + 1]!,
    ]);
    assert.equal(ids.size, 1, `one message id everywhere: ${[...ids].join(', ')}`);
    assert.equal(got.amqp[0].persistent, true);
    for (const body of [got.nats[0].body, got.amqp[0].body, got.mqtt[0]])
      assert.equal(body.body.after.status, 'shipped');
    // Each subscription's delivery of the message, read as the admin API reads it: a row, or its cursor.
    // The topic's log (migration 042): its message row, or its segment's entry where routing wrote a segment.
    const { rows } = await db.pool.query(
      `SELECT seq::text FROM rowcast.log_messages('parcels', 0, 9223372036854775807) WHERE id = $1`,
      [[...ids][0]],
    );
    assert.equal(rows.length, 1);
    await eventually(
      async () =>
        (
          await Promise.all(
            ['nats', 'amqp', 'redis', 'mqtt'].map((name) => getDelivery(db.pool, `${name}@${rows[0].seq}`)),
          )
        ).every((d) => d.state === 'done'),
      'all four deliveries recorded done',
    );
  },
);

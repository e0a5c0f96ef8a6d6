import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { MqttSink } from '../../src/delivery/sinks/mqtt/mqtt-sink.js';
import {
  assertAbortedIsRetry,
  assertDead,
  assertReconnectsAfterRestart,
  assertRetry,
  attemptsFor,
  errorOf,
  noAbort,
  outboundMessage as message,
  POLICY,
  withEnv,
} from '../support/sink-attempt.js';
import { freePort, TcpProxy, withSilentServer } from '../support/tcp-broker.js';
import { BROKERS, runId } from '../support/brokers.js';

const RUN = runId();
const PREFIX = `rowcast-test/${RUN}`;

interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

let subscriber: MqttClient;
const received: Received[] = [];
const sink = new MqttSink();

before(async () => {
  subscriber = await mqtt.connectAsync(BROKERS.mqtt, {
    protocolVersion: 5,
    clientId: `rowcast-test-sub-${RUN}`,
    clean: true,
    reconnectPeriod: 0,
  });
  subscriber.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString(), packet }));
  await subscriber.subscribeAsync(`${PREFIX}/#`, { qos: 1 });
});

after(async () => {
  await sink.close();
  await subscriber?.endAsync();
});

/** The message the subscriber got on a topic with this rowcast message id (in the envelope or the user properties). */
async function receivedOn(topic: string, match: (r: Received) => boolean, timeoutMs = 5000): Promise<Received> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const found = received.find((r) => r.topic === topic && match(r));
    if (found) return found;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nothing received on ${topic} within ${timeoutMs} ms`);
}

const attempt = attemptsFor('mqtt');

const envelopeId = (r: Received) => {
  try {
    return (JSON.parse(r.payload) as { id?: string }).id;
  } catch {
    return undefined;
  }
};
const userProperty = (r: Received, name: string) => r.packet.properties?.userProperties?.[name];

describe('mqtt sink (Mosquitto)', () => {
  test('publishes the envelope with QoS 1 and MQTT 5 properties, done once the broker acknowledged it', async () => {
    const msg = message();
    const outcome = await sink.send(
      attempt({ url: BROKERS.mqtt, topic: `${PREFIX}/{topic}` }, msg, { headers: { 'x-tenant': 'acme' } }),
      noAbort(),
    );
    assert.deepEqual(outcome, { kind: 'done' });

    const got = await receivedOn(`${PREFIX}/orders`, (r) => envelopeId(r) === msg.id);
    const envelope = JSON.parse(got.payload) as Record<string, unknown>;
    assert.equal(envelope.topic, 'orders');
    assert.equal(envelope.subject, 'Order created');
    assert.deepEqual(envelope.attributes, { op: 'INSERT' });
    assert.ok(got.payload.includes('"total":"12345678901234567890.5"'), 'the body is embedded byte for byte');
    assert.equal(got.packet.qos, 1);
    assert.equal(got.packet.retain, false);
    assert.equal(got.packet.properties?.contentType, 'application/json');
    assert.equal(userProperty(got, 'rowcast-message-id'), msg.id);
    assert.equal(userProperty(got, 'rowcast-topic'), 'orders');
    assert.equal(userProperty(got, 'rowcast-subject'), 'Order created');
    assert.equal(userProperty(got, 'x-tenant'), 'acme');
  });

  test('QoS 2 over MQTT 3.1.1 with the raw format: the payload alone', async () => {
    const msg = message({ body: `plain text ${randomUUID()}` });
    const outcome = await sink.send(
      attempt({ url: BROKERS.mqtt, topic: `${PREFIX}/v4`, qos: 2, protocolVersion: 4 }, msg, { format: 'raw' }),
      noAbort(),
    );
    assert.deepEqual(outcome, { kind: 'done' });
    const got = await receivedOn(`${PREFIX}/v4`, (r) => r.payload === msg.body);
    assert.equal(got.packet.qos, 1, 'delivered at the subscription QoS (1)');
    assert.equal(userProperty(got, 'rowcast-message-id'), undefined);
  });

  test('binary CloudEvents: the attributes as user properties, the body as the payload', async () => {
    const msg = message();
    assert.deepEqual(
      await sink.send(
        attempt({ url: BROKERS.mqtt, topic: `${PREFIX}/ce` }, msg, { format: 'cloudevents-binary' }),
        noAbort(),
      ),
      { kind: 'done' },
    );
    const got = await receivedOn(`${PREFIX}/ce`, (r) => userProperty(r, 'id') === msg.id);
    assert.equal(got.payload, msg.body);
    assert.equal(userProperty(got, 'specversion'), '1.0');
    assert.equal(got.packet.properties?.contentType, 'application/json');
  });

  test('concurrent sends share one connection and are each acknowledged', async () => {
    const topic = `${PREFIX}/concurrent`;
    const msgs = Array.from({ length: 200 }, () => message());
    const outcomes = await Promise.all(
      msgs.map((msg) => sink.send(attempt({ url: BROKERS.mqtt, topic }, msg), noAbort())),
    );
    assert.deepEqual(new Set(outcomes.map((o) => o.kind)), new Set(['done']));
    for (const msg of msgs) await receivedOn(topic, (r) => userProperty(r, 'rowcast-message-id') === msg.id);
  });

  test('retain: a subscriber that comes later gets the last message', async () => {
    const topic = `${PREFIX}/retained`;
    const msg = message();
    assert.deepEqual(await sink.send(attempt({ url: BROKERS.mqtt, topic, retain: true }, msg), noAbort()), {
      kind: 'done',
    });
    const late = await mqtt.connectAsync(BROKERS.mqtt, {
      protocolVersion: 5,
      clientId: `rowcast-test-late-${RUN}`,
      reconnectPeriod: 0,
    });
    try {
      const retained = new Promise<string>((resolve) =>
        late.on('message', (_t, payload, packet) => packet.retain && resolve(payload.toString())),
      );
      await late.subscribeAsync(topic, { qos: 1 });
      assert.equal((JSON.parse(await retained) as { id: string }).id, msg.id);
      // Clean up: an empty retained message deletes it.
      await late.publishAsync(topic, '', { qos: 1, retain: true });
    } finally {
      await late.endAsync();
    }
  });

  test('an unreachable broker is a retry with the reason, well within the timeout, without the password', async () => {
    const unreachable = attempt({
      url: `mqtt://127.0.0.1:${await freePort()}`,
      topic: `${PREFIX}/x`,
      username: 'rowcast',
      password: 's3cret-pw',
    });
    const outcome = await assertRetry(
      sink,
      unreachable,
      /cannot connect to the MQTT broker at mqtt:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
      2000,
      'fails fast',
    );
    assert.doesNotMatch(errorOf(outcome), /s3cret/);
  });

  test('a broker that never answers the connect is a retry after deliveryPolicy.timeout', async () => {
    await withFakeBroker({ connack: false }, async (url) => {
      const silent = attempt({ url, topic: `${PREFIX}/x` }, message(), { deliveryPolicy: { ...POLICY, timeout: 300 } });
      await assertRetry(sink, silent, `timed out after 300 ms connecting to the MQTT broker at ${url}`, 1500);
    });
  });

  test('a broker that accepts the connection but never sends PUBACK is a retry after deliveryPolicy.timeout', async () => {
    await withFakeBroker({ connack: true }, async (url) => {
      const silent = attempt({ url, topic: `${PREFIX}/x` }, message(), { deliveryPolicy: { ...POLICY, timeout: 300 } });
      await assertRetry(
        sink,
        silent,
        `timed out after 300 ms waiting for the broker to acknowledge the message (PUBACK, topic "${PREFIX}/x" on ${url})`,
        1500,
      );
    });
  });

  test('the password may come from the environment', async () => {
    const variable = `ROWCAST_TEST_MQTT_PASSWORD_${process.pid}`;
    const options = { url: BROKERS.mqtt, topic: `${PREFIX}/env`, username: 'rowcast', password: { env: variable } };
    // This Mosquitto allows anonymous clients and ignores the password.
    await withEnv(variable, 'anything', async () => {
      assert.deepEqual(await sink.send(attempt(options), noAbort()), { kind: 'done' });
    });
    await assertDead(sink, attempt, [
      [options, /options\.password: environment variable ROWCAST_TEST_MQTT_PASSWORD_\d+ is not set/],
    ]);
  });

  test('an aborted send is a retry', async () => {
    await assertAbortedIsRetry(sink, attempt({ url: BROKERS.mqtt, topic: `${PREFIX}/aborted` }));
  });

  test('invalid options are dead, naming the option', async () => {
    await assertDead(sink, attempt, [
      [{ qos: 0 }, /options\.qos: .*QoS 0 is not allowed: the broker does not acknowledge it/],
      [{ qos: 3 }, /options\.qos: QoS 1 .* or 2/],
      [{ topic: 'rowcast/+' }, /options\.topic: .*no wildcards/],
      [{ topic: 'rowcast/{table}' }, /options\.topic: the only placeholder is \{topic\}/],
      [{ url: 'http://localhost:1883' }, /options\.url: a broker URL/],
      [{ url: 'mqtt://user:pw@localhost:1883' }, /options\.url: .*put credentials in username and password/],
      [{ password: 'x' }, /options\.username: required with a password/],
      [{ protocolVersion: 3 }, /options\.protocolVersion: 5 \(MQTT 5\) or 4/],
      [{ Qos: 1 }, /options: unknown option "Qos"/],
    ]);
  });

  test('after the connection is lost, a send fails with retry and the next one reconnects', async () => {
    const upstream = new URL(BROKERS.mqtt);
    const proxy = await TcpProxy.start(upstream.hostname, Number(upstream.port || 1883));
    const options = { url: `mqtt://127.0.0.1:${proxy.port}`, topic: `${PREFIX}/restart` };
    await assertReconnectsAfterRestart(new MqttSink(), proxy, () => attempt(options), {
      last: (msg) => receivedOn(`${PREFIX}/restart`, (r) => envelopeId(r) === msg.id),
    });
  });
});

/** A TCP server that speaks just enough MQTT 5 to accept a connection (or not even that), then stays silent. */
function withFakeBroker(behaviour: { connack: boolean }, run: (url: string) => Promise<void>): Promise<void> {
  return withSilentServer(
    (port) => run(`mqtt://127.0.0.1:${port}`),
    (socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        // CONNACK (MQTT 5): no session present, reason code 0 (success), no properties.
        if (behaviour.connack) socket.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]));
      });
    },
  );
}

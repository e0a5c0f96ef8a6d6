import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import { AmqpSink } from '../../src/delivery/sinks/amqp/amqp-sink.js';
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
const EXCHANGE = `rowcast-test-${RUN}`;
const DECLARED = `rowcast-test-declared-${RUN}`;

let model: ChannelModel;
let ch: Channel;
const sink = new AmqpSink();

before(async () => {
  model = await connect(BROKERS.amqp);
  ch = await model.createChannel();
  await ch.assertExchange(EXCHANGE, 'topic', { durable: false, autoDelete: false });
});

after(async () => {
  await sink.close();
  for (const exchange of [EXCHANGE, DECLARED]) await ch?.deleteExchange(exchange).catch(() => {});
  await model?.close();
});

/** An exclusive queue bound to the exchange (the default exchange needs no binding), deleted with the connection. */
async function queue(exchange: string, pattern: string): Promise<string> {
  const { queue: name } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  if (exchange) await ch.bindQueue(name, exchange, pattern);
  return name;
}

/** The next message of a queue, acknowledged. */
async function nextMessage(name: string, timeoutMs = 5000): Promise<GetMessage> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const msg = await ch.get(name, { noAck: true });
    if (msg) return msg;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no message on ${name} within ${timeoutMs} ms`);
}

const attempt = attemptsFor('amqp');

describe('amqp sink (RabbitMQ)', () => {
  test('publishes the envelope, persistent, with the message id, and counts it once the broker confirmed it', async () => {
    const q = await queue(EXCHANGE, 'rowcast.orders');
    const msg = message();
    const outcome = await sink.send(
      attempt({ url: BROKERS.amqp, exchange: EXCHANGE, routingKey: 'rowcast.{topic}' }, msg),
      noAbort(),
    );
    assert.deepEqual(outcome, { kind: 'done' });

    const got = await nextMessage(q);
    const envelope = JSON.parse(got.content.toString()) as Record<string, unknown>;
    assert.equal(envelope.id, msg.id);
    assert.equal(envelope.topic, 'orders');
    assert.deepEqual(envelope.attributes, { op: 'INSERT' });
    assert.ok(
      got.content.toString().includes('"total":"12345678901234567890.5"'),
      'the body is embedded byte for byte',
    );
    assert.equal(got.fields.routingKey, 'rowcast.orders');
    assert.equal(got.properties.messageId, msg.id);
    assert.equal(got.properties.deliveryMode, 2);
    assert.equal(got.properties.contentType, 'application/json');
    assert.equal(got.properties.appId, 'rowcast');
    assert.equal(got.properties.timestamp, Math.floor(Date.parse(msg.timestamp) / 1000));
    assert.equal(got.properties.headers?.['rowcast-topic'], 'orders');
    assert.equal(got.properties.headers?.['rowcast-subject'], 'Order created');
    assert.equal(got.properties.headers?.['rowcast-subscription'], 'to-amqp');
  });

  test('the default exchange routes to the queue named by the routing key; raw and binary CloudEvents formats', async () => {
    const q = await queue('', '');
    const raw = message({ body: 'plain text', contentType: 'text/plain', subject: null });
    assert.deepEqual(
      await sink.send(
        attempt({ url: BROKERS.amqp, exchange: '', routingKey: q }, raw, {
          format: 'raw',
          headers: { 'x-tenant': 'acme' },
        }),
        noAbort(),
      ),
      { kind: 'done' },
    );
    const gotRaw = await nextMessage(q);
    assert.equal(gotRaw.content.toString(), 'plain text');
    assert.equal(gotRaw.properties.contentType, 'text/plain');
    assert.equal(gotRaw.properties.messageId, raw.id);
    assert.equal(gotRaw.properties.headers?.['x-tenant'], 'acme');
    assert.equal(gotRaw.properties.headers?.['rowcast-subject'], undefined);

    const ce = message();
    assert.deepEqual(
      await sink.send(
        attempt({ url: BROKERS.amqp, exchange: '', routingKey: q }, ce, { format: 'cloudevents-binary' }),
        noAbort(),
      ),
      { kind: 'done' },
    );
    const gotCe = await nextMessage(q);
    assert.equal(gotCe.content.toString(), ce.body);
    assert.equal(gotCe.properties.headers?.['cloudEvents:id'], ce.id);
    assert.equal(gotCe.properties.headers?.['cloudEvents:specversion'], '1.0');
  });

  test('a message no queue receives is a retry (mandatory), or done with mandatory: false', async () => {
    const unroutable = await sink.send(
      attempt({ url: BROKERS.amqp, exchange: EXCHANGE, routingKey: 'nobody.listens' }),
      noAbort(),
    );
    assert.equal(unroutable.kind, 'retry');
    assert.match(
      errorOf(unroutable),
      /unroutable: no queue is bound to exchange "rowcast-test-[^"]+" .* for routing key "nobody\.listens"/,
    );
    assert.doesNotMatch(errorOf(unroutable), /guest:guest/);

    const dropped = await sink.send(
      attempt({ url: BROKERS.amqp, exchange: EXCHANGE, routingKey: 'nobody.listens', mandatory: false }),
      noAbort(),
    );
    assert.deepEqual(dropped, { kind: 'done' });
  });

  test('concurrent sends share a channel; each confirm and each return reaches its own send', async () => {
    const q = await queue(EXCHANGE, 'routed.*');
    const sends = Array.from({ length: 200 }, (_, i) => {
      const msg = message();
      const routed = i % 2 === 0;
      return {
        msg,
        routed,
        outcome: sink.send(
          attempt(
            { url: BROKERS.amqp, exchange: EXCHANGE, routingKey: routed ? 'routed.{topic}' : 'dropped.{topic}' },
            msg,
          ),
          noAbort(),
        ),
      };
    });
    for (const s of sends)
      assert.equal(
        (await s.outcome).kind,
        s.routed ? 'done' : 'retry',
        `${s.routed ? 'routed' : 'unroutable'} message`,
      );
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) ids.add(String((await nextMessage(q)).properties.messageId));
    assert.deepEqual(ids, new Set(sends.filter((s) => s.routed).map((s) => s.msg.id)));
    assert.equal(await ch.get(q), false, 'nothing more');
  });

  test('a missing exchange is a retry that says to declare it, and does not disturb other exchanges', async () => {
    const q = await queue(EXCHANGE, 'still.works');
    const [missing, fine] = await Promise.all([
      sink.send(attempt({ url: BROKERS.amqp, exchange: `rowcast-missing-${RUN}` }), noAbort()),
      sink.send(attempt({ url: BROKERS.amqp, exchange: EXCHANGE, routingKey: 'still.works' }), noAbort()),
    ]);
    assert.equal(missing.kind, 'retry');
    assert.match(errorOf(missing), /NOT_FOUND - no exchange 'rowcast-missing-[^']+'.*set assertExchange: true/);
    assert.deepEqual(fine, { kind: 'done' });
    await nextMessage(q);
  });

  test('assertExchange declares the exchange; a conflicting type is a retry that says so', async () => {
    // The queue must exist before the first publish (mandatory), so this test declares the exchange the same way first.
    await ch.assertExchange(DECLARED, 'direct', { durable: true });
    const q = await queue(DECLARED, 'orders');
    const msg = message();
    assert.deepEqual(
      await sink.send(
        attempt({ url: BROKERS.amqp, exchange: DECLARED, assertExchange: true, exchangeType: 'direct' }, msg),
        noAbort(),
      ),
      { kind: 'done' },
    );
    assert.equal((await nextMessage(q)).properties.messageId, msg.id);

    const conflict = await sink.send(
      attempt({ url: BROKERS.amqp, exchange: DECLARED, assertExchange: true, exchangeType: 'fanout' }),
      noAbort(),
    );
    assert.equal(conflict.kind, 'retry');
    assert.match(errorOf(conflict), /PRECONDITION_FAILED - inequivalent arg 'type'.*set exchangeType to its type/);
  });

  test('an unreachable broker is a retry with the reason, well within the timeout, without the password', async () => {
    const unreachable = attempt({ url: `amqp://rowcast:s3cret-pw@127.0.0.1:${await freePort()}`, exchange: EXCHANGE });
    const outcome = await assertRetry(
      sink,
      unreachable,
      /cannot connect to the AMQP broker at amqp:\/\/rowcast:\*\*\*@127\.0\.0\.1:\d+: .*ECONNREFUSED/,
      2000,
      'fails fast',
    );
    assert.doesNotMatch(errorOf(outcome), /s3cret/);
  });

  test('wrong credentials are a retry that does not show the password', async () => {
    const outcome = await sink.send(
      attempt({ url: 'amqp://guest:not-the-password@127.0.0.1:5672', exchange: EXCHANGE }),
      noAbort(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.match(errorOf(outcome), /ACCESS_REFUSED/);
    assert.doesNotMatch(errorOf(outcome), /not-the-password/);
  });

  test('a broker that never answers is a retry after deliveryPolicy.timeout', async () => {
    await withSilentServer(async (port) => {
      const silent = attempt({ url: `amqp://guest:guest@127.0.0.1:${port}`, exchange: EXCHANGE }, message(), {
        deliveryPolicy: { ...POLICY, timeout: 300 },
      });
      await assertRetry(
        sink,
        silent,
        `timed out after 300 ms connecting to the AMQP broker at amqp://guest:***@127.0.0.1:${port}`,
        1500,
      );
    });
  });

  test('the URL may come from the environment', async () => {
    const variable = `ROWCAST_TEST_AMQP_URL_${process.pid}`;
    await withEnv(variable, BROKERS.amqp, async () => {
      const q = await queue(EXCHANGE, 'from.env');
      assert.deepEqual(
        await sink.send(attempt({ url: { env: variable }, exchange: EXCHANGE, routingKey: 'from.env' }), noAbort()),
        { kind: 'done' },
      );
      await nextMessage(q);
    });
    await assertDead(sink, attempt, [
      [
        { url: { env: variable }, exchange: EXCHANGE },
        /options\.url: environment variable ROWCAST_TEST_AMQP_URL_\d+ is not set/,
      ],
    ]);
  });

  test('an aborted send is a retry', async () => {
    await assertAbortedIsRetry(sink, attempt({ url: BROKERS.amqp, exchange: EXCHANGE }));
  });

  test('invalid options are dead, naming the option', async () => {
    await assertDead(sink, attempt, [
      [{}, /options\.exchange: the exchange to publish to/],
      [{ exchange: 'x', url: 'http://localhost' }, /options\.url: an AMQP URL/],
      [{ exchange: 'x', routingKey: '{table}' }, /options\.routingKey: the only placeholder is \{topic\}/],
      [{ exchange: 'x', exchangeType: 'topic' }, /options\.exchangeType: only used with assertExchange: true/],
      [
        { exchange: 'x', assertExchange: true, exchangeType: 'x-delayed' },
        /options\.exchangeType: one of "direct", "topic", "fanout", "headers"/,
      ],
      [{ exchange: '', assertExchange: true }, /options\.assertExchange: the default exchange/],
      [{ exchange: 'x', routingkey: 'y' }, /options: unknown option "routingkey"/],
    ]);
  });

  test('after the connection is lost, a send fails with retry and the next one reconnects', async () => {
    const q = await queue(EXCHANGE, 'restart');
    const upstream = new URL(BROKERS.amqp);
    const proxy = await TcpProxy.start(upstream.hostname, Number(upstream.port || 5672));
    const via = new URL(BROKERS.amqp);
    via.port = String(proxy.port);
    const options = { url: via.toString(), exchange: EXCHANGE, routingKey: 'restart' };
    await assertReconnectsAfterRestart(new AmqpSink(), proxy, () => attempt(options), {
      first: () => nextMessage(q),
      last: async (msg) => assert.equal((await nextMessage(q)).properties.messageId, msg.id),
    });
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { NatsSink } from '../../src/delivery/sinks/nats/nats-sink.js';
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
} from '../support/sink-attempt.js';
import { freePort, TcpProxy, withSilentServer } from '../support/tcp-broker.js';
import { BROKERS, runId } from '../support/brokers.js';

const RUN = runId('_');
const STREAM = `ROWCAST_TEST_${RUN}`;
const PREFIX = `rowcast-test.${RUN}`;

let nc: NatsConnection;
let jsm: JetStreamManager;
const sink = new NatsSink();

before(async () => {
  nc = await connect({ servers: BROKERS.nats });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: [`${PREFIX}.>`], duplicate_window: 60_000_000_000 });
});

after(async () => {
  await sink.close();
  await jsm?.streams.delete(STREAM).catch(() => {});
  await nc?.close();
});

const attempt = attemptsFor('nats');

async function lastOn(subject: string) {
  const stored = await jsm.streams.getMessage(STREAM, { last_by_subj: subject });
  assert.ok(stored, `a message on ${subject}`);
  return stored;
}

async function countOn(subject: string): Promise<number> {
  const info = await jsm.streams.info(STREAM, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

describe('nats sink (JetStream)', () => {
  test('publishes the envelope to the stream with the message id as Nats-Msg-Id, and a second send is deduplicated', async () => {
    const subject = `${PREFIX}.envelope.orders`;
    const msg = message();
    const outcome = await sink.send(
      attempt({ servers: BROKERS.nats, subject: `${PREFIX}.envelope.{topic}` }, msg),
      noAbort(),
    );
    assert.deepEqual(outcome, { kind: 'done' });

    const stored = await lastOn(subject);
    const envelope = stored.json<Record<string, unknown>>();
    assert.equal(envelope.id, msg.id);
    assert.equal(envelope.topic, 'orders');
    assert.equal(envelope.subject, 'Order created');
    assert.deepEqual(envelope.attributes, { op: 'INSERT' });
    assert.ok(stored.string().includes('"total":"12345678901234567890.5"'), 'the body is embedded byte for byte');
    assert.equal(stored.header.get('Nats-Msg-Id'), msg.id);
    assert.equal(stored.header.get('Rowcast-Message-Id'), msg.id);
    assert.equal(stored.header.get('Rowcast-Topic'), 'orders');
    assert.equal(stored.header.get('Rowcast-Subject'), 'Order created');
    assert.equal(stored.header.get('Content-Type'), 'application/json');

    // A retry of the same message (say its PubAck was lost) is acknowledged, and the stream keeps one copy.
    const again = await sink.send(
      { ...attempt({ servers: BROKERS.nats, subject: `${PREFIX}.envelope.{topic}` }, msg), attempt: 2 },
      noAbort(),
    );
    assert.deepEqual(again, { kind: 'done' });
    assert.equal(await countOn(subject), 1);
  });

  test('raw format publishes the body alone, with its content type and extra headers', async () => {
    const msg = message({ body: 'plain text', contentType: 'text/plain', subject: null });
    const outcome = await sink.send(
      attempt({ servers: [BROKERS.nats], subject: `${PREFIX}.raw` }, msg, {
        format: 'raw',
        headers: { 'X-Tenant': 'acme' },
      }),
      noAbort(),
    );
    assert.deepEqual(outcome, { kind: 'done' });
    const stored = await lastOn(`${PREFIX}.raw`);
    assert.equal(stored.string(), 'plain text');
    assert.equal(stored.header.get('Content-Type'), 'text/plain');
    assert.equal(stored.header.get('X-Tenant'), 'acme');
    assert.equal(stored.header.get('Nats-Msg-Id'), msg.id);
    assert.equal(stored.header.has('Rowcast-Subject'), false);
  });

  test('binary CloudEvents: the attributes as ce- headers, the body as the data', async () => {
    const msg = message();
    assert.deepEqual(
      await sink.send(
        attempt({ servers: BROKERS.nats, subject: `${PREFIX}.ce` }, msg, { format: 'cloudevents-binary' }),
        noAbort(),
      ),
      { kind: 'done' },
    );
    const stored = await lastOn(`${PREFIX}.ce`);
    assert.equal(stored.string(), msg.body);
    assert.equal(stored.header.get('ce-id'), msg.id);
    assert.equal(stored.header.get('ce-specversion'), '1.0');
    assert.equal(stored.header.get('Nats-Msg-Id'), msg.id);
  });

  test('concurrent sends share one connection and are each acknowledged', async () => {
    const subject = `${PREFIX}.concurrent`;
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, () => sink.send(attempt({ servers: BROKERS.nats, subject }), noAbort())),
    );
    assert.deepEqual(new Set(outcomes.map((o) => o.kind)), new Set(['done']));
    assert.equal(await countOn(subject), 200);
  });

  test('a subject no stream captures is a retry that says to create the stream', async () => {
    const outcome = await sink.send(
      attempt({ servers: BROKERS.nats, subject: `rowcast-nostream.${RUN}.{topic}` }),
      noAbort(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.match(
      errorOf(outcome),
      /no JetStream stream captures subject "rowcast-nostream\.[^"]+\.orders".*create a stream/,
    );
  });

  test('an unreachable server is a retry with the reason, well within the timeout', async () => {
    const unreachable = attempt({ servers: `nats://127.0.0.1:${await freePort()}`, subject: `${PREFIX}.x` });
    await assertRetry(
      sink,
      unreachable,
      /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
      2000,
      'fails fast',
    );
  });

  test('a server that never answers the connect is a retry after deliveryPolicy.timeout', async () => {
    // (@nats-io/transport-node 3.4 leaves the socket of a timed-out connect open, so the server side closes it.)
    await withSilentServer(async (port) => {
      const silent = attempt({ servers: `nats://127.0.0.1:${port}`, subject: `${PREFIX}.x` }, message(), {
        deliveryPolicy: { ...POLICY, timeout: 300 },
      });
      await assertRetry(sink, silent, `timed out after 300 ms connecting to NATS at nats://127.0.0.1:${port}`, 1500);
    });
  });

  test('no PubAck within deliveryPolicy.timeout is a retry', async () => {
    // Something answers requests on this subject, but never replies: the publish waits for an ack that never comes.
    const subject = `rowcast-noack.${RUN}`;
    const sub = nc.subscribe(subject);
    await nc.flush();
    try {
      await assertRetry(
        sink,
        attempt({ servers: BROKERS.nats, subject }, message(), { deliveryPolicy: { ...POLICY, timeout: 300 } }),
        /timed out after 300 ms waiting for JetStream to acknowledge/,
        1500,
      );
    } finally {
      sub.unsubscribe();
    }
  });

  test('an aborted send is a retry', async () => {
    await assertAbortedIsRetry(sink, attempt({ servers: BROKERS.nats, subject: `${PREFIX}.aborted` }));
  });

  test('invalid options are dead, naming the option', async () => {
    await assertDead(sink, attempt, [
      [{ subject: 'rowcast.*' }, /options\.subject: .*wildcards/],
      [{ subject: 'rowcast.{table}' }, /options\.subject: the only placeholder is \{topic\}/],
      [{ servers: 'http://example.com/x' }, /options\.servers: /],
      [{ subjet: 'x' }, /options: unknown option "subjet"/],
      [{ credentials: { user: 'u' } }, /options\.credentials: write \{ user, password \}/],
      [
        { credentials: { token: { env: `ROWCAST_UNSET_${RUN}` } } },
        /options\.credentials\.token: environment variable ROWCAST_UNSET_\w+ is not set/,
      ],
    ]);
  });

  test('passwords are not in errors', async () => {
    const outcome = await sink.send(
      attempt({
        servers: `nats://127.0.0.1:${await freePort()}`,
        subject: `${PREFIX}.x`,
        credentials: { user: 'rowcast', password: 'hunter2-secret' },
      }),
      noAbort(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.doesNotMatch(errorOf(outcome), /hunter2/);
  });

  test('after the connection is lost, a send fails with retry and the next one reconnects', async () => {
    const upstream = new URL(BROKERS.nats.replace(/^nats:/, 'http:'));
    const proxy = await TcpProxy.start(upstream.hostname, Number(upstream.port));
    const options = { servers: `nats://127.0.0.1:${proxy.port}`, subject: `${PREFIX}.restart` };
    await assertReconnectsAfterRestart(new NatsSink(), proxy, () => attempt(options), {
      last: async (msg) => assert.equal((await lastOn(`${PREFIX}.restart`)).header.get('Nats-Msg-Id'), msg.id),
    });
  });
});

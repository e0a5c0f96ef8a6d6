import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisSink } from '../../src/delivery/sinks/redis/redis-sink.js';
import type { OutboundMessage } from '../../src/index.js';
import {
  assertAbortedIsRetry,
  assertDead,
  assertReconnectsAfterRestart,
  assertRetry,
  attemptsFor,
  errorOf,
  noAbort,
  outboundMessage,
  POLICY,
  withEnv,
} from '../support/sink-attempt.js';
import { freePort, TcpProxy, withSilentServer } from '../support/tcp-broker.js';
import { BROKERS, runId } from '../support/brokers.js';

const RUN = runId();
const PREFIX = `rowcast-test:${RUN}`;

let redis: Redis;
const sink = new RedisSink();

before(async () => {
  redis = new Redis(BROKERS.redis);
});

after(async () => {
  await sink.close();
  const keys = await redis.keys(`${PREFIX}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

/** Messages here carry a trace, which becomes a field of the entry. */
function message(overrides: Partial<OutboundMessage> = {}): OutboundMessage {
  return outboundMessage({ trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', ...overrides });
}

const attempt = attemptsFor('redis', message);

/** The entries of a stream, fields as an object. */
async function entries(stream: string): Promise<Array<{ entryId: string; fields: Record<string, string> }>> {
  const raw = await redis.xrange(stream, '-', '+');
  return raw.map(([entryId, list]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i < list.length; i += 2) fields[list[i]!] = list[i + 1]!;
    return { entryId, fields };
  });
}

describe('redis sink (Streams)', () => {
  test('appends the message to the stream with XADD: id, topic, subject, attributes, body', async () => {
    const msg = message();
    const outcome = await sink.send(attempt({ url: BROKERS.redis, stream: `${PREFIX}:{topic}` }, msg), noAbort());
    assert.deepEqual(outcome, { kind: 'done' });

    const [entry, ...rest] = await entries(`${PREFIX}:orders`);
    assert.equal(rest.length, 0);
    assert.ok(entry);
    assert.match(entry.entryId, /^\d+-\d+$/);
    assert.equal(entry.fields.id, msg.id);
    assert.equal(entry.fields.topic, 'orders');
    assert.equal(entry.fields.subject, 'Order created');
    assert.deepEqual(JSON.parse(entry.fields.attributes!), { op: 'INSERT' });
    assert.equal(entry.fields.contentType, 'application/json');
    assert.equal(entry.fields.timestamp, msg.timestamp);
    assert.equal(entry.fields.trace, msg.trace);
    const envelope = JSON.parse(entry.fields.body!) as Record<string, unknown>;
    assert.equal(envelope.id, msg.id);
    assert.ok(entry.fields.body!.includes('"total":"12345678901234567890.5"'), 'the body is embedded byte for byte');
  });

  test('raw format: the body alone; a message without subject has no subject field', async () => {
    const msg = message({ body: 'plain text', contentType: 'text/plain', subject: null, trace: null });
    assert.deepEqual(
      await sink.send(attempt({ url: BROKERS.redis, stream: `${PREFIX}:raw` }, msg, { format: 'raw' }), noAbort()),
      { kind: 'done' },
    );
    const [entry] = await entries(`${PREFIX}:raw`);
    assert.equal(entry?.fields.body, 'plain text');
    assert.equal(entry?.fields.contentType, 'text/plain');
    assert.equal(entry?.fields.id, msg.id);
    assert.equal('subject' in entry!.fields, false);
    assert.equal('trace' in entry!.fields, false);
  });

  test('concurrent sends share one connection and are each appended', async () => {
    const stream = `${PREFIX}:concurrent`;
    const msgs = Array.from({ length: 200 }, () => message());
    const outcomes = await Promise.all(
      msgs.map((msg) => sink.send(attempt({ url: BROKERS.redis, stream }, msg), noAbort())),
    );
    assert.deepEqual(new Set(outcomes.map((o) => o.kind)), new Set(['done']));
    assert.deepEqual(new Set((await entries(stream)).map((e) => e.fields.id)), new Set(msgs.map((m) => m.id)));
  });

  test('maxLen caps the stream (exactly with approximate: false)', async () => {
    const stream = `${PREFIX}:capped`;
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const msg = message();
      sent.push(msg.id);
      assert.deepEqual(
        await sink.send(attempt({ url: BROKERS.redis, stream, maxLen: 2, approximate: false }, msg), noAbort()),
        { kind: 'done' },
      );
    }
    assert.deepEqual(
      (await entries(stream)).map((e) => e.fields.id),
      sent.slice(-2),
    );
    // The default, "MAXLEN ~", is accepted too (Redis trims whole nodes, so a small stream keeps its entries).
    assert.deepEqual(await sink.send(attempt({ url: BROKERS.redis, stream, maxLen: 2 }), noAbort()), { kind: 'done' });
  });

  test('a key that is not a stream is a retry that says so', async () => {
    await redis.set(`${PREFIX}:string`, 'x');
    const outcome = await sink.send(attempt({ url: BROKERS.redis, stream: `${PREFIX}:string` }), noAbort());
    assert.equal(outcome.kind, 'retry');
    assert.match(
      errorOf(outcome),
      /WRONGTYPE .*the key "rowcast-test:[^"]+:string" on redis:\/\/127\.0\.0\.1:6379 is not a stream/,
    );
  });

  test('an unreachable server is a retry with the reason, well within the timeout, without the password', async () => {
    const unreachable = attempt({
      url: `redis://rowcast:s3cret-pw@127.0.0.1:${await freePort()}`,
      stream: `${PREFIX}:x`,
    });
    const outcome = await assertRetry(
      sink,
      unreachable,
      /cannot connect to Redis at redis:\/\/rowcast:\*\*\*@127\.0\.0\.1:\d+: .*ECONNREFUSED/,
      2000,
      'fails fast',
    );
    assert.doesNotMatch(errorOf(outcome), /s3cret/);
  });

  test('wrong credentials are a retry that does not show the password', async () => {
    const url = new URL(BROKERS.redis);
    url.username = `nosuchuser-${RUN}`;
    url.password = 'not-the-password';
    const outcome = await sink.send(attempt({ url: url.toString(), stream: `${PREFIX}:x` }), noAbort());
    assert.equal(outcome.kind, 'retry');
    assert.match(errorOf(outcome), /WRONGPASS|NOAUTH|ERR AUTH/);
    assert.doesNotMatch(errorOf(outcome), /not-the-password/);
  });

  test('a server that never answers is a retry after deliveryPolicy.timeout', async () => {
    await withSilentServer(async (port) => {
      const silent = attempt({ url: `redis://127.0.0.1:${port}`, stream: `${PREFIX}:x` }, message(), {
        deliveryPolicy: { ...POLICY, timeout: 300 },
      });
      await assertRetry(sink, silent, `timed out after 300 ms connecting to Redis at redis://127.0.0.1:${port}`, 1500);
    });
  });

  test('the URL may come from the environment', async () => {
    const variable = `ROWCAST_TEST_REDIS_URL_${process.pid}`;
    await withEnv(variable, BROKERS.redis, async () => {
      assert.deepEqual(await sink.send(attempt({ url: { env: variable }, stream: `${PREFIX}:env` }), noAbort()), {
        kind: 'done',
      });
      assert.equal((await entries(`${PREFIX}:env`)).length, 1);
    });
    await assertDead(sink, attempt, [
      [
        { url: { env: variable }, stream: `${PREFIX}:env` },
        /options\.url: environment variable ROWCAST_TEST_REDIS_URL_\d+ is not set/,
      ],
    ]);
  });

  test('an aborted send is a retry', async () => {
    await assertAbortedIsRetry(sink, attempt({ url: BROKERS.redis, stream: `${PREFIX}:aborted` }));
  });

  test('invalid options are dead, naming the option', async () => {
    await assertDead(sink, attempt, [
      [{ url: 'http://localhost:6379' }, /options\.url: a Redis URL/],
      [{ stream: '' }, /options\.stream: must not be empty/],
      [{ stream: 'x:{table}' }, /options\.stream: the only placeholder is \{topic\}/],
      [{ maxLen: 0 }, /options\.maxLen: at least 1/],
      [{ maxLen: 1.5 }, /options\.maxLen: a whole number/],
      [{ approximate: 'yes' }, /options\.approximate: true or false/],
      [{ maxlen: 10 }, /options: unknown option "maxlen"/],
    ]);
  });

  test('after the connection is lost, a send fails with retry and the next one reconnects', async () => {
    const upstream = new URL(BROKERS.redis);
    const proxy = await TcpProxy.start(upstream.hostname, Number(upstream.port || 6379));
    const via = new URL(BROKERS.redis);
    via.port = String(proxy.port);
    const options = { url: via.toString(), stream: `${PREFIX}:restart` };
    await assertReconnectsAfterRestart(new RedisSink(), proxy, () => attempt(options), {
      last: async (msg) => assert.equal((await entries(`${PREFIX}:restart`)).at(-1)?.fields.id, msg.id),
    });
  });
});

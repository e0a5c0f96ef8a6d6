/**
 * The per-attempt request/response log and resend: every HTTP attempt keeps the request headers it sent (credentials,
 * signatures and env-configured headers redacted) and the response (status, headers, the first 1 KB of the body), in
 * GET /api/deliveries/{id} and `rowcast delivery`; a done delivery can be resent (POST /api/deliveries/{id}/resend,
 * `rowcast resend`) as the same message, with a "resent" entry starting its new series of attempts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fetch } from 'undici';
import { generateSecret, replayCapture, redrive, type RowcastRuntime } from '../../src/index.js';
import { describeRun, runCli } from '../support/cli.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

const TOKEN = 'delivery-attempts-test-token';
const API_KEY = 'key-from-the-environment-1234';
const PASSWORD = 'basic-auth-password-5678';
const secret = generateSecret();

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let base: string;

before(async () => {
  process.env.ATTEMPTLOG_TEST_API_KEY = API_KEY;
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
  const endpoint = new URL(receiver.url);
  endpoint.username = 'rowcast';
  endpoint.password = PASSWORD;
  await applyConfig(db.pool, {
    topics: { orders: {} },
    captures: { orders: { table: 'orders', topic: 'orders' } },
    subscriptions: {
      // Rows: the attempt log of a successful delivery, and the resend of a done one, are its row's (a cursor keeps
      // nothing of a first-time success: cursor-delivery-detail.test.ts).
      hook: {
        topic: 'orders',
        protocol: 'http',
        endpoint: endpoint.toString(),
        secret,
        headers: { 'x-api-key': '${ATTEMPTLOG_TEST_API_KEY}', 'x-tenant': 'acme' },
        deliveryPolicy: { maxAttempts: 3, minDelay: '50ms', maxDelay: '100ms', timeout: '5s' },
        cursor: false,
      },
    },
  });
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1', token: TOKEN } });
  base = `${rowcast.httpUrl!}/api`;
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
  delete process.env.ATTEMPTLOG_TEST_API_KEY;
});

async function api<T = any>(path: string, method = 'GET'): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as T };
}

/** The delivery of order `id` to hook, once it is `state`. */
async function deliveryOf(id: number, state = 'done'): Promise<any> {
  return eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT d.id::text FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id WHERE (m.body::jsonb -> 'after' ->> 'id')::int = $1`,
      [id],
    );
    if (!rows[0]) return undefined;
    const { body } = await api(`/deliveries/${rows[0].id}`);
    return body.state === state && body;
  }, `delivery of order ${id} ${state}`);
}

const requestsFor = (id: number) => receiver.requests.filter((r: ReceivedRequest) => r.json?.body?.after?.id === id);

describe('attempt headers and the request/response log', () => {
  test('each HTTP request carries rowcast-attempt and rowcast-max-attempts', async () => {
    receiver.reply = () => ({ status: 200 });
    await db.pool.query(`INSERT INTO orders VALUES (1, 'first')`);
    const [sent] = await eventually(() => requestsFor(1).length && requestsFor(1), 'order 1 received');
    assert.equal(sent!.headers['rowcast-attempt'], '1');
    assert.equal(sent!.headers['rowcast-max-attempts'], '3');
  });

  test('an attempt keeps the request headers, secrets redacted, and the response with the first 1 KB of its body', async () => {
    // 1,500 bytes: "é" is 2 bytes in UTF-8, so the 1 KB cut falls inside no character.
    const long = `${'é'.repeat(700)}${'z'.repeat(100)}`;
    receiver.reply = (r) =>
      r.json?.body?.after?.id === 2
        ? { status: 200, headers: { 'x-request-id': 'req-42', 'set-cookie': 'session=abc' }, body: long }
        : { status: 200 };
    await db.pool.query(`INSERT INTO orders VALUES (2, 'second')`);
    const d = await deliveryOf(2);
    const [sent] = requestsFor(2);
    assert.ok(sent, 'received');
    assert.equal(d.attemptLog.length, 1);
    const [a] = d.attemptLog;
    assert.equal(a.attempt, 1);
    assert.equal(a.outcome, 'delivered');
    assert.equal(a.status, 200);
    assert.equal(typeof a.durationMs, 'number');
    const h = a.request.headers;
    assert.equal(h['webhook-id'], sent.headers['webhook-id']);
    assert.equal(h['rowcast-attempt'], '1');
    assert.equal(h['rowcast-max-attempts'], '3');
    assert.equal(h['x-tenant'], 'acme', 'a plain configured header is kept');
    assert.equal(h['x-api-key'], '[redacted]', 'a header from the environment is redacted');
    assert.equal(h['webhook-signature'], '[redacted]');
    assert.equal(
      h.authorization,
      'Basic [redacted]',
      'the credentials of the endpoint URL are redacted, the scheme kept',
    );
    assert.equal(h['content-type'], 'application/json');
    assert.equal(a.response.status, 200);
    assert.equal(a.response.headers['x-request-id'], 'req-42');
    assert.equal(a.response.headers['set-cookie'], '[redacted]');
    assert.equal(a.response.bodyTruncated, true);
    assert.equal(Buffer.byteLength(a.response.body), 1024, 'the first 1 KB of the body');
    assert.equal(a.response.body, long.slice(0, 512));
    const stored = JSON.stringify(d);
    for (const leaked of [API_KEY, PASSWORD, secret, String(sent.headers['webhook-signature']).slice(3)])
      assert.ok(!stored.includes(leaked), `no secret in the log: ${leaked.slice(0, 6)}…`);
  });

  test('a failed attempt keeps its response; a reset connection keeps the request without a response', async () => {
    let n = 0;
    receiver.reply = (r) =>
      r.json?.body?.after?.id !== 3
        ? { status: 200 }
        : ++n === 1
          ? { status: 503, body: 'busy, try later' }
          : n === 2
            ? 'reset'
            : { status: 204 };
    await db.pool.query(`INSERT INTO orders VALUES (3, 'third')`);
    const d = await deliveryOf(3);
    assert.deepEqual(
      d.attemptLog.map((a: any) => [a.attempt, a.outcome, a.status]),
      [
        [1, 'failed', 503],
        [2, 'failed', null],
        [3, 'delivered', 204],
      ],
    );
    const [first, second, third] = d.attemptLog;
    assert.equal(first.response.body, 'busy, try later');
    assert.equal(first.response.bodyTruncated, false);
    assert.match(first.error, /HTTP 503: busy, try later/);
    assert.equal(second.request.headers['rowcast-attempt'], '2');
    assert.equal(second.response, undefined, 'no response came');
    assert.equal(third.response.body, '');
    assert.equal(third.request.headers['rowcast-attempt'], '3');
  });
});

describe('resend', () => {
  test('a done delivery is resent: the same message arrives again, after a "resent" entry in its log', async () => {
    receiver.reply = () => ({ status: 200, body: 'ok' });
    await db.pool.query(`INSERT INTO orders VALUES (4, 'fourth')`);
    const d = await deliveryOf(4);
    assert.equal(requestsFor(4).length, 1);
    assert.deepEqual((await api(`/deliveries/${d.id}/resend`, 'POST')).body, { resent: 1 });
    const [original, again] = await eventually(
      () => requestsFor(4).length === 2 && requestsFor(4),
      'order 4 received again',
    );
    assert.equal(
      again!.headers['webhook-id'],
      original!.headers['webhook-id'],
      'the same message: the same webhook-id',
    );
    assert.equal(again!.headers['rowcast-attempt'], '1', 'a new series of attempts');
    const resent = await eventually(async () => {
      const r = (await api(`/deliveries/${d.id}`)).body;
      return r.state === 'done' && r.attemptLog.length === 3 && r;
    }, 'the resent delivery done');
    assert.deepEqual(
      resent.attemptLog.map((a: any) => [a.attempt, a.outcome]),
      [
        [1, 'delivered'],
        [null, 'resent'],
        [1, 'delivered'],
      ],
    );
  });

  test('resend of an unknown id is 404, of a bad id 400, of a delivery in flight 409', async () => {
    const unknown = await api('/deliveries/99999999/resend', 'POST');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error.message, /No delivery 99999999/);
    assert.equal((await api('/deliveries/abc/resend', 'POST')).status, 400);
    // The receiver holds its answer: the delivery stays in flight until released.
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    receiver.reply = (r) => (r.json?.body?.after?.id === 5 ? { status: 200, hold } : { status: 200 });
    try {
      await db.pool.query(`INSERT INTO orders VALUES (5, 'held')`);
      await eventually(() => requestsFor(5).length, 'order 5 at the receiver');
      const inFlight = await deliveryOf(5, 'in_flight');
      const busy = await api(`/deliveries/${inFlight.id}/resend`, 'POST');
      assert.equal(busy.status, 409);
      assert.match(busy.body.error.message, /is in flight: it is on its way already/);
    } finally {
      release();
    }
    await deliveryOf(5);
  });
});

describe('history events: each new series of attempts is marked', () => {
  test('a bulk redrive writes "redriven", a replay "replayed", before the new attempts', async () => {
    const since = new Date(Date.now() - 1000);
    receiver.reply = (r) => (r.json?.body?.after?.id === 6 ? { status: 500, body: 'down' } : { status: 200 });
    await db.pool.query(`INSERT INTO orders VALUES (6, 'dies')`);
    const dead = await deliveryOf(6, 'dead');
    assert.deepEqual(
      dead.attemptLog.map((a: any) => a.outcome),
      ['failed', 'failed', 'dead'],
    );
    receiver.reply = () => ({ status: 200 });
    assert.equal(await redrive(db.pool, { subscription: 'hook', since: new Date(Date.now() - 60_000) }), 1);
    const redriven = await eventually(async () => {
      const r = (await api(`/deliveries/${dead.id}`)).body;
      return r.state === 'done' && r;
    }, 'the redriven delivery done');
    assert.deepEqual(
      redriven.attemptLog.map((a: any) => [a.attempt, a.outcome]),
      [
        [1, 'failed'],
        [2, 'failed'],
        [3, 'dead'],
        [null, 'redriven'],
        [1, 'delivered'],
      ],
    );

    assert.ok((await replayCapture(db.pool, 'orders', { subscription: 'hook', since })) >= 1);
    const replayed = await eventually(async () => {
      const r = (await api(`/deliveries/${dead.id}`)).body;
      return r.state === 'done' && r.attemptLog.length === 7 && r;
    }, 'the replayed delivery done');
    assert.deepEqual(
      replayed.attemptLog.slice(4).map((a: any) => [a.attempt, a.outcome]),
      [
        [1, 'delivered'],
        [null, 'replayed'],
        [1, 'delivered'],
      ],
    );
  });
});

describe('CLI: rowcast delivery and rowcast resend', () => {
  const cli = (...args: string[]) => runCli(args, { env: { DATABASE_URL: db.url } });

  test('rowcast delivery <id> prints the attempts with their request and response; --json the API detail', async () => {
    const d = await deliveryOf(2);
    const text = await cli('delivery', d.id);
    assert.equal(text.code, 0, describeRun(text));
    assert.match(text.stdout, new RegExp(`delivery ${d.id}: done`));
    assert.match(text.stdout, /attempt 1 .* delivered {2}200/);
    assert.match(text.stdout, /> x-api-key: \[redacted\]/);
    assert.match(text.stdout, /> rowcast-max-attempts: 3/);
    assert.match(text.stdout, /< HTTP 200/);
    assert.match(text.stdout, /< body \(first 1 KB\): éé/);
    assert.ok(!text.stdout.includes(API_KEY) && !text.stdout.includes(PASSWORD));
    const json = await cli('delivery', d.id, '--json');
    assert.equal(json.code, 0, describeRun(json));
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.id, d.id);
    assert.equal(parsed.attemptLog[0].request.headers['webhook-signature'], '[redacted]');

    const bad = await cli('delivery', 'abc');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /"abc" is not a delivery id/);
  });

  test('rowcast resend <id> sends it again; an unknown id fails with a clear message', async () => {
    receiver.reply = () => ({ status: 200 });
    const d = await deliveryOf(1);
    const before = requestsFor(1).length;
    const run = await cli('resend', d.id);
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, new RegExp(`delivery ${d.id} is pending again`));
    await eventually(() => requestsFor(1).length === before + 1, 'order 1 received again');
    const text = await eventually(async () => {
      const r = await cli('delivery', d.id);
      return (
        r.stdout.includes('resent: a new series of attempts') &&
        /resent[^]*attempt 1 .* delivered/.test(r.stdout) &&
        r.stdout
      );
    }, 'the resend in rowcast delivery');
    assert.match(text, /same message \(same webhook-id\)/);

    const unknown = await cli('resend', '99999999');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /No delivery 99999999/);
  });
});

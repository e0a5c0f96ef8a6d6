/**
 * Standard Webhooks signatures as a subscriber checks them, with the `standardwebhooks` package
 * (new Webhook(secret).verify(body, headers)): a correct delivery verifies; a tampered body, the wrong secret, a
 * changed webhook-id or timestamp, and a stale delivery (verified more than the package's 5-minute tolerance
 * later) fail. Each attempt is signed afresh, so a retry carries a new timestamp and verifies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { generateSecret } from '../../src/capture/apply.js';
import type { RowcastRuntime } from '../../src/dispatcher/runtime.js';
import { applyConfig, createTestDatabase, eventually, startTestRowcast, type TestDatabase } from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
const secret = generateSecret();

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await db.pool.query(`CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric)`);
  await applyConfig(db.pool, {
    topics: { things: {} },
    captures: { things: { table: 'things', topic: 'things' } },
    subscriptions: {
      hook: { topic: 'things', protocol: 'http', endpoint: receiver.url, secret, deliveryPolicy: { minDelay: 100, maxDelay: 200 } },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

const headersOf = (r: ReceivedRequest) => ({
  'webhook-id': String(r.headers['webhook-id']),
  'webhook-timestamp': String(r.headers['webhook-timestamp']),
  'webhook-signature': String(r.headers['webhook-signature']),
});

/** verify() throws WebhookVerificationError with this message (or returns the parsed body). */
function verifyError(secretToUse: string, body: string, headers: Record<string, string>): string | undefined {
  try {
    new Webhook(secretToUse).verify(body, headers);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof WebhookVerificationError, `a verification error, not ${String(err)}`);
    return err.message;
  }
}

/** Runs fn with Date.now() shifted by offsetMs: the receiver verifying later (or with a skewed clock). */
function at<T>(offsetMs: number, fn: () => T): T {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

let delivery: ReceivedRequest;

describe('Standard Webhooks signatures', () => {
  test('a correct delivery verifies and verify() returns the parsed body', async () => {
    await db.pool.query(`INSERT INTO things VALUES (9007199254740993, 'naïve 😀', 1.500)`);
    delivery = await eventually(() => receiver.requests[0], 'a delivery');
    const headers = headersOf(delivery);
    assert.equal(headers['webhook-id'], delivery.json.id);
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/);
    assert.ok(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000) < 60, 'timestamp in seconds, now');
    const parsed = new Webhook(secret).verify(delivery.body, headers) as any;
    assert.equal(parsed.body.after.id, '9007199254740993');
    assert.equal(parsed.body.after.name, 'naïve 😀', 'signed over the UTF-8 bytes of the body');
    // Also with the headers exactly as Node's http server hands them over.
    assert.doesNotThrow(() => new Webhook(secret).verify(delivery.body, delivery.headers as Record<string, string>));
  });

  test('a tampered body fails', () => {
    const headers = headersOf(delivery);
    const tampered = delivery.body.replace('1.500', '0.001');
    assert.notEqual(tampered, delivery.body);
    assert.equal(verifyError(secret, tampered, headers), 'No matching signature found');
    assert.equal(verifyError(secret, `${delivery.body} `, headers), 'No matching signature found', 'even one added byte');
  });

  test('the wrong secret fails', () => {
    assert.equal(verifyError(generateSecret(), delivery.body, headersOf(delivery)), 'No matching signature found');
  });

  test('the message id and the timestamp are signed: changing either fails', () => {
    const headers = headersOf(delivery);
    assert.equal(verifyError(secret, delivery.body, { ...headers, 'webhook-id': '00000000-0000-0000-0000-000000000000' }), 'No matching signature found');
    // A replay with a fresh timestamp (to get past the tolerance) no longer matches the signature.
    assert.equal(verifyError(secret, delivery.body, { ...headers, 'webhook-timestamp': String(Math.floor(Date.now() / 1000) + 1) }), 'No matching signature found');
    assert.equal(verifyError(secret, delivery.body, { ...headers, 'webhook-signature': '' }), 'Missing required headers');
  });

  test('a stale delivery fails: verified 10 minutes later (the tolerance is 5 minutes)', () => {
    const headers = headersOf(delivery);
    assert.equal(at(4 * 60_000, () => verifyError(secret, delivery.body, headers)), undefined, '4 minutes later: within tolerance');
    assert.equal(at(10 * 60_000, () => verifyError(secret, delivery.body, headers)), 'Message timestamp too old');
    // Also the header itself rewritten to 10 minutes ago: refused on the timestamp before the signature is checked.
    const stale = String(Number(headers['webhook-timestamp']) - 600);
    assert.equal(verifyError(secret, delivery.body, { ...headers, 'webhook-timestamp': stale }), 'Message timestamp too old');
    // A receiver whose clock is 10 minutes behind sees a timestamp from the future.
    assert.equal(at(-10 * 60_000, () => verifyError(secret, delivery.body, headers)), 'Message timestamp too new');
  });

  test('every attempt is signed afresh: a retry has the same webhook-id, a new timestamp, and verifies', async () => {
    let failures = 0;
    receiver.reply = () => (failures++ < 1 ? { status: 500 } : { status: 200 });
    const before = receiver.requests.length;
    await db.pool.query(`INSERT INTO things VALUES (2, 'retried', 2)`);
    const [first, second] = await eventually(() => receiver.requests.length >= before + 2 && receiver.requests.slice(before), 'two attempts');
    assert.equal(first!.status, 500);
    assert.equal(second!.status, 200);
    assert.equal(first!.headers['webhook-id'], second!.headers['webhook-id']);
    assert.equal(first!.headers['rowcast-attempt'], '1');
    assert.equal(second!.headers['rowcast-attempt'], '2');
    assert.ok(Number(second!.headers['webhook-timestamp']) >= Number(first!.headers['webhook-timestamp']));
    for (const r of [first!, second!]) assert.doesNotThrow(() => new Webhook(secret).verify(r.body, headersOf(r)));
  });

  // Secret rotation (two signatures, old and new secret, sent during an overlap) is not implemented yet.
  test.todo('secret rotation (not implemented yet): during the overlap each delivery carries two v1 signatures, and both the old and the new secret verify it');
});

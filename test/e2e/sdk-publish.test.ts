import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { type RowcastConfigInput, invokeFunction } from '../../src/index.js';
import { eventually, settled, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/*
 * The AWS SDK inside a handler, with no endpoint in its code: rowcast points it at the endpoint of the handler's
 * thread or process, and what it publishes joins the invocation — written with a successful attempt, never with a
 * failed one. rowcast runs here without its HTTP server and without aws.credentials: the SDKs reach rowcast only
 * through that endpoint.
 */

const fixtures = 'test/fixtures/sdk-publish';
const TOPIC_ARN = 'arn:aws:sns:us-east-1:000000000000:notifications';
const fast = { minDelay: '50ms', maxDelay: '100ms' } as const;

const boto3 = promisify(execFile)('python3', ['-c', 'import boto3'], { timeout: 30_000 }).then(
  () => null,
  (err: Error) => `python3 with boto3 is not available (${err.message.split('\n')[0]}); install Debian's python3-boto3`,
);

let db: TestDatabase;
let receiver: WebhookReceiver;
let markers: string;

const config = (): RowcastConfigInput => ({
  topics: { notifications: {}, failures: {}, 'ordered.fifo': { fifo: true } },
  functions: {
    node_writer: {
      handler: path.resolve(fixtures, 'publisher.mjs'),
      maxAttempts: 3,
      ...fast,
      environment: { ENV_TOPIC_ARN: TOPIC_ARN },
    },
    batch: { handler: path.resolve(fixtures, 'batch.mjs'), maxAttempts: 1 },
    both_ways: {
      handler: path.resolve(fixtures, 'both-ways.mjs'),
      maxAttempts: 1,
      environment: { ENV_TOPIC_ARN: TOPIC_ARN },
    },
    python_writer: {
      runtime: 'python3.11',
      directory: fixtures,
      handler: 'publisher.lambda_handler',
      timeout: '10s',
      maxAttempts: 3,
      ...fast,
      // As botocore before 1.31 (Debian's python3-boto3 is 1.26), which does not read AWS_ENDPOINT_URL_SNS: rowcast's
      // bootstrap makes it the default endpoint of SNS clients.
      environment: { ENV_TOPIC_ARN: TOPIC_ARN, MARKER_DIR: markers, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' },
    },
  },
  subscriptions: { app: { topic: 'notifications', protocol: 'http', endpoint: receiver.url } },
});

let close: () => Promise<void>;

before(async () => {
  markers = mkdtempSync(path.join(tmpdir(), 'rowcast-sdk-markers-'));
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    config: (started) => ((receiver = started.receiver), config()),
  }));
});

after(async () => {
  await close?.();
  rmSync(markers, { recursive: true, force: true });
});

const invocation = async (id: string) =>
  (await db.pool.query('SELECT * FROM rowcast.invocations WHERE id = $1', [id])).rows[0];
const finished = (id: string) =>
  eventually(
    async () => (await invocation(id))?.state === 'done' && invocation(id),
    `invocation ${id} to be done`,
    30_000,
  );
const deliveredFor = (key: string) => receiver.requests.filter((r) => r.json?.body?.key === key);

async function publishesWithTheInvocation(fn: string, key: string) {
  const id = await invokeFunction(db.pool, fn, { key, order: 7 });
  const inv = await finished(id);
  const result = JSON.parse(inv.result);
  assert.match(
    result.endpoint,
    /^http:\/\/127\.0\.0\.1:\d+\/_invocation\/[0-9a-f]{64}\/$/,
    "the SDK's endpoint is the handler's own",
  );
  const messageId = /^Notification sent:([0-9a-f-]{36})$/.exec(result.body)?.[1];
  assert.ok(messageId, `the handler got a MessageId (${result.body})`);
  // Written with the success: the invocation records it as its publish, in the same transaction.
  assert.deepEqual(inv.published, [messageId]);
  const { rows } = await db.pool.query('SELECT topic, subject, body FROM rowcast.messages WHERE id = $1', [messageId]);
  assert.equal(rows[0].topic, 'notifications');
  assert.equal(rows[0].subject, 'Notification for row-insert in RDS');
  assert.deepEqual(JSON.parse(rows[0].body), { key, order: 7 }, 'MessageStructure json: the default message');
  const got = await eventually(() => deliveredFor(key)[0], `the ${fn} message at the subscriber`);
  assert.equal(got.json.id, messageId);
  assert.equal(got.json.subject, 'Notification for row-insert in RDS');
}

async function failedAttemptPublishesNothing(fn: string, key: string) {
  const id = await invokeFunction(db.pool, fn, { key, failFirst: true });
  const inv = await finished(id);
  assert.equal(inv.attempts, 2, 'the first attempt failed after publishing, the retry succeeded');
  assert.match(inv.last_error, /failing after publishing, on purpose/);
  await eventually(() => deliveredFor(key).length >= 1, `the ${fn} retry's message at the subscriber`);
  // Both attempts published; only the successful one's message exists.
  const { rows } = await db.pool.query(
    `SELECT id::text FROM rowcast.messages WHERE topic = 'notifications' AND body::jsonb ->> 'key' = $1`,
    [key],
  );
  assert.deepEqual(
    rows.map((r) => r.id),
    inv.published,
  );
  await settled(db.pool); // nothing left to route, deliver or invoke: no other copy can come
  assert.equal(deliveredFor(key).length, 1, 'exactly one delivery');
}

describe('a Node handler with @aws-sdk/client-sns', () => {
  test('new SNSClient({}) at module scope publishes with the invocation, and the subscriber receives it', () =>
    publishesWithTheInvocation('node_writer', 'node-1'));
  test('an attempt that publishes and then throws publishes nothing; the retry publishes once', () =>
    failedAttemptPublishesNothing('node_writer', 'node-2'));
});

describe('a Python handler with boto3', () => {
  test("boto3.client('sns') at module scope publishes with the invocation, and the subscriber receives it", async (t) => {
    const missing = await boto3;
    if (missing) return t.skip(missing);
    await publishesWithTheInvocation('python_writer', 'py-1');
  });
  test('an attempt that publishes and then raises publishes nothing; the retry publishes once', async (t) => {
    const missing = await boto3;
    if (missing) return t.skip(missing);
    await failedAttemptPublishesNothing('python_writer', 'py-2');
  });
});

describe('the endpoint of a handler', () => {
  test('PublishBatch to a FIFO topic joins the invocation, entry by entry as the SNS API reads them; CreateTopic is the SNS API’s', async () => {
    const id = await invokeFunction(db.pool, 'batch', { key: 'b1' });
    const inv = await finished(id);
    const result = JSON.parse(inv.result);
    assert.equal(result.made, 'arn:aws:sns:us-east-1:000000000000:made-by-b1');
    const { rows: made } = await db.pool.query(`SELECT owner FROM rowcast.topics WHERE name = 'made-by-b1'`);
    assert.equal(made[0]?.owner, 'api');
    assert.deepEqual(
      result.successful.map((s: { Id: string }) => s.Id),
      ['a', 'b'],
    );
    assert.deepEqual(
      result.failed.map((f: { Id: string; Code: string }) => [f.Id, f.Code]),
      [['c', 'InvalidParameter']],
    );
    assert.match(result.failed[0].Message, /MessageGroupId parameter is required for FIFO topics/);
    const { rows } = await db.pool.query(
      `SELECT id::text, body, group_key, dedup_key FROM rowcast.messages WHERE topic = 'ordered.fifo' ORDER BY seq`,
    );
    assert.deepEqual(
      rows.map((r) => [r.body, r.group_key, r.dedup_key]),
      [
        ['b1-1', 'g', 'b1-1'],
        ['b1-2', 'g', 'b1-2'],
      ],
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      result.successful.map((s: { MessageId: string }) => s.MessageId),
    );
    assert.deepEqual(
      inv.published,
      rows.map((r) => r.id),
    );
  });

  test('a publish to a topic that does not exist gets SNS’s NotFound', async () => {
    const id = await invokeFunction(db.pool, 'batch', { key: 'b2', unknownTopic: true });
    const result = JSON.parse((await finished(id)).result);
    assert.equal(result.error, 'NotFoundException');
    assert.match(result.message, /Topic does not exist/);
  });

  test('the endpoint answers only its own threads and processes, and only POSTs', async () => {
    const result = JSON.parse((await finished(await invokeFunction(db.pool, 'node_writer', { key: 'probe' }))).result);
    const base = new URL(result.endpoint);
    const unknown = await fetch(`${base.origin}/_invocation/${'0'.repeat(64)}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=ListTopics&Version=2010-03-31',
    });
    assert.equal(unknown.status, 403);
    const refusal = await unknown.text();
    assert.match(refusal, /<Code>InvalidClientTokenId<\/Code>/);
    // As SNS answers: the whole body with its length, not chunked.
    assert.equal(unknown.headers.get('content-length'), String(Buffer.byteLength(refusal)));
    assert.equal(unknown.headers.get('transfer-encoding'), null);
    // The thread's own URL, between invocations: no invocation runs there, so a publish has nothing to join.
    const idle = await fetch(result.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `Action=Publish&Version=2010-03-31&TopicArn=${encodeURIComponent(TOPIC_ARN)}&Message=late`,
    });
    assert.equal(idle.status, 403);
    assert.match(await idle.text(), /<Code>AuthorizationError<\/Code>.*No invocation is running in this handler/s);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.messages WHERE body = 'late'`);
    assert.equal(rows[0].n, 0);
  });
});

/**
 * What PostgreSQL's crash does to a results commit that had not reached the disk (they commit without a WAL flush):
 * the invocation is leased again as before the attempt, and its messages and their deliveries are gone. The
 * subscriber may already have had them.
 */
async function loseTheRecord(id: string): Promise<void> {
  await db.pool.query(
    `WITH inv AS (
       UPDATE rowcast.invocations i
          SET state = 'pending', attempts = i.attempts - 1, available_at = now(), result = NULL, published = NULL,
              duration_ms = NULL, finished_at = NULL
         FROM rowcast.invocations old WHERE old.id = i.id AND i.id = $1
       RETURNING old.published
     )
     DELETE FROM rowcast.messages WHERE id IN (SELECT unnest(published) FROM inv)`,
    [id],
  );
  await db.pool.query(`SELECT pg_notify('rowcast', 'invocations')`);
}

describe('a run redone after a crash lost its record', () => {
  test('publishes the same message ids, through context.publish and the SDK, repeats and concurrent publishes included', async () => {
    const id = await invokeFunction(db.pool, 'both_ways', { key: 'again' });
    const first = await finished(id);
    const ran = JSON.parse(first.result);
    const ids = [...ran.viaContext, ...ran.viaSdk];
    assert.equal(ids.length, 6);
    assert.equal(new Set(ran.viaContext).size, 3, 'equal messages published twice are two messages');
    assert.equal(new Set(ran.viaSdk).size, 3);
    assert.deepEqual([...first.published].sort(), [...ids].sort());
    await eventually(() => deliveredFor('again').length === 6, 'the first run’s six messages at the subscriber');
    await settled(db.pool);

    await loseTheRecord(id);
    const second = await eventually(
      async () => (await invocation(id))?.state === 'done' && invocation(id),
      'the invocation to run again',
      30_000,
    );
    const again = JSON.parse(second.result);
    assert.equal(second.attempts, first.attempts, 'the same attempt, run again');
    assert.deepEqual(again.viaContext, ran.viaContext, 'context.publish: the same ids, in order');
    // The SDK's three publishes are sent at once and may reach rowcast in another order; each message keeps its id.
    const byMessage = (run: { viaSdk: string[] }) =>
      new Map([3, 4].map((n) => [n, new Set(run.viaSdk.filter((_, i) => [3, 4, 3][i] === n))]));
    assert.deepEqual(byMessage(again), byMessage(ran), 'the SDK: the same ids for the same messages');
    assert.deepEqual([...second.published].sort(), [...ids].sort());
    // The subscriber gets the redone run's messages again, under the ids it has seen: at-least-once, no new message.
    await eventually(() => deliveredFor('again').length === 12, 'the redone run’s messages at the subscriber');
    const seen = deliveredFor('again').map((r) => r.json.id as string);
    assert.deepEqual([...new Set(seen)].sort(), [...ids].sort());

    // Another invocation with the same payload publishes other messages.
    const other = JSON.parse((await finished(await invokeFunction(db.pool, 'both_ways', { key: 'again' }))).result);
    assert.equal([...other.viaContext, ...other.viaSdk].filter((m: string) => ids.includes(m)).length, 0);
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { parseConfig } from '../../src/config/load.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { RowcastRuntime } from '../../src/dispatcher/runtime.js';
import { invokeFunction } from '../../src/functions/invoke.js';
import { applyConfig, createTestDatabase, eventually, startTestRowcast, type TestDatabase } from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const FIVE_MB = 5 * 1024 * 1024;
let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await db.pool.query(`CREATE TABLE documents (id int PRIMARY KEY, content text)`);
  const config: RowcastConfigInput = {
    topics: { rejecting: {}, 'claim-checked': { largeMessages: 'claim-check', claimCheckTtl: '1h' } },
    captures: {
      'docs-rejecting': { table: 'documents', topic: 'rejecting' },
      'docs-claim-checked': { table: 'documents', topic: 'claim-checked' },
    },
    functions: { publisher: { handler: 'test/fixtures/handlers/publisher.ts', environment: { ENV_TOPIC_ARN: 'rejecting' }, maxAttempts: 1 } },
    subscriptions: {
      rejecting: { topic: 'rejecting', protocol: 'http', endpoint: `${receiver.url}?rejecting` },
      'claim-checked': { topic: 'claim-checked', protocol: 'http', endpoint: `${receiver.url}?claim-checked` },
    },
  };
  await applyConfig(db.pool, config);
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } }, parseConfig(config, 'test').functions);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

test('a 5 MB row: refused clearly on a rejecting topic, delivered by claim check on the other', { timeout: 120_000 }, async () => {
  await db.pool.query(`INSERT INTO documents VALUES (1, repeat('x', ${FIVE_MB}))`);

  const ref = await eventually(() => receiver.requests.find((r) => r.path.endsWith('?claim-checked')), 'the claim-check reference', 60_000);
  assert.ok(ref.body.length < 2000, `the subscriber received a small reference (${ref.body.length} bytes)`);
  assert.equal(ref.json.attributes.rowcastClaimCheck, 'true');
  const check = ref.json.body.rowcastClaimCheck as { url: string; size: number; sha256: string; contentType: string };
  assert.ok(check.size > FIVE_MB);
  const res = await request(check.url);
  assert.equal(res.statusCode, 200);
  const fetched = await res.body.text();
  assert.equal(Buffer.byteLength(fetched), check.size);
  assert.equal(createHash('sha256').update(fetched).digest('hex'), check.sha256);
  assert.equal((JSON.parse(fetched) as { after: { content: string } }).after.content.length, FIVE_MB);

  const forged = await request(check.url.replace(/signature=[^&]+/, 'signature=forged'));
  assert.equal(forged.statusCode, 403);
  await forged.body.dump();
  const expired = await request(check.url.replace(/expires=\d+/, 'expires=1000'));
  assert.equal(expired.statusCode, 403);
  await expired.body.dump();

  const dead = await eventually(
    async () => (await db.pool.query(`SELECT state, last_error FROM rowcast.deliveries WHERE subscription = 'rejecting'`)).rows[0],
    'the rejected delivery',
  );
  assert.equal(dead.state, 'dead');
  assert.match(dead.last_error, /over topic rejecting's maxMessageSize \(262144 bytes\): raise it or set largeMessages: 'claim-check'/);
  assert.ok(!receiver.requests.some((r) => r.path.endsWith('?rejecting')), 'nothing was sent to the rejecting subscription');
});

test("a function's too-large publish throws, naming the size and the limit", async () => {
  const id = await invokeFunction(db.pool, 'publisher', { padding: 'y'.repeat(300 * 1024) });
  const row = await eventually(async () => (await db.pool.query(`SELECT state, last_error FROM rowcast.invocations WHERE id = $1`, [id])).rows.find((r) => r.state === 'failed'), 'the failed invocation');
  assert.match(row.last_error, /publish: the message is \d+ bytes, over topic "rejecting"'s maxMessageSize \(262144 bytes\)/);
});

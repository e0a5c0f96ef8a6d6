import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { applyRetention } from '../../src/store/retention.js';
import { invokeFunction } from '../../src/index.js';
import { ClaimChecks } from '../../src/routing/claim-check.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

const FIVE_MB = 5 * 1024 * 1024;
let db: TestDatabase;
let receiver: WebhookReceiver;

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    tables: `CREATE TABLE documents (id int PRIMARY KEY, content text)`,
    config: ({ receiver }) => ({
      topics: { rejecting: {}, 'claim-checked': { largeMessages: 'claim-check', claimCheckTtl: '1h' } },
      captures: {
        'docs-rejecting': { table: 'documents', topic: 'rejecting' },
        'docs-claim-checked': { table: 'documents', topic: 'claim-checked' },
      },
      functions: {
        publisher: {
          handler: 'test/fixtures/handlers/publisher.ts',
          environment: { ENV_TOPIC_ARN: 'rejecting' },
          maxAttempts: 1,
        },
      },
      subscriptions: {
        rejecting: { topic: 'rejecting', protocol: 'http', endpoint: `${receiver.url}?rejecting` },
        'claim-checked': {
          topic: 'claim-checked',
          protocol: 'http',
          endpoint: `${receiver.url}?claim-checked`,
          // rows: retention keeps a body by its delivery row's updated_at (cursors: cursor-claim-checks.test.ts).
          cursor: false,
        },
      },
    }),
    runtime: { http: { port: 0, host: '127.0.0.1' } },
  }));
});

after(() => close?.());

test(
  'a 5 MB row: refused clearly on a rejecting topic, delivered by claim check on the other',
  { timeout: patient(120_000) },
  async () => {
    await db.pool.query(`INSERT INTO documents VALUES (1, repeat('x', ${FIVE_MB}))`);

    const ref = await eventually(
      () => receiver.requests.find((r) => r.path.endsWith('?claim-checked')),
      'the claim-check reference',
      60_000,
    );
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
    const tampered = await request(check.url.replace(/expires=\d+/, 'expires=1000'));
    assert.equal(tampered.statusCode, 403);
    await tampered.body.dump();

    // Links signed with the installation's key for the same message: one that expired a second ago is refused, one
    // that has not expired yet is served (so the refusal is the expiry's, not the signature's).
    const id = ref.json.id as string;
    const base = new URL(check.url).origin;
    const keys = await ClaimChecks.load(db.pool, base);
    const linkOf = (issuedAt: number) =>
      keys.reference({ ...ref.json, body: '', contentType: 'application/json', attributes: {} }, 60_000, issuedAt).body;
    const expiredUrl = (JSON.parse(linkOf(Date.now() - 61_000)) as { rowcastClaimCheck: { url: string } })
      .rowcastClaimCheck.url;
    const validUrl = (JSON.parse(linkOf(Date.now())) as { rowcastClaimCheck: { url: string } }).rowcastClaimCheck.url;
    assert.ok(expiredUrl.includes(encodeURIComponent(id)));
    const expired = await request(expiredUrl);
    assert.equal(expired.statusCode, 403, 'a correctly signed link past its expiry');
    assert.match(await expired.body.text(), /has expired/);
    const valid = await request(validUrl);
    assert.equal(valid.statusCode, 200, 'the same link before its expiry');
    await valid.body.dump();

    const dead = await eventually(
      async () =>
        (await db.pool.query(`SELECT state, last_error FROM rowcast.deliveries WHERE subscription = 'rejecting'`))
          .rows[0],
      'the rejected delivery',
    );
    assert.equal(dead.state, 'dead');
    assert.match(
      dead.last_error,
      /over topic rejecting's maxMessageSize \(262144 bytes\): raise it or set largeMessages: 'claim-check'/,
    );
    assert.ok(
      !receiver.requests.some((r) => r.path.endsWith('?rejecting')),
      'nothing was sent to the rejecting subscription',
    );
  },
);

test('retention keeps a claim-checked body until the links sent for it expire, then deletes it', async () => {
  await db.pool.query(`INSERT INTO documents VALUES (2, repeat('z', 300 * 1024))`);
  const ref = await eventually(
    () =>
      receiver.delivered.find((r) => r.path.endsWith('?claim-checked') && r.json.body.rowcastClaimCheck.size < FIVE_MB),
    'the reference to the 300 KiB row',
  );
  const id = ref.json.id as string;
  const url = ref.json.body.rowcastClaimCheck.url as string;
  await eventually(
    async () =>
      (await db.pool.query(`SELECT 1 FROM rowcast.deliveries WHERE message_id = $1 AND state = 'done'`, [id]))
        .rowCount === 1,
    'the delivery recorded done',
  );

  // The message is past a retention of one minute; the link it was sent with lasts the topic's claimCheckTtl (1h).
  await db.pool.query(`UPDATE rowcast.messages SET created_at = now() - interval '10 minutes' WHERE id = $1`, [id]);
  await applyRetention(db.pool, 60_000, 60_000);
  const res = await request(url);
  assert.equal(res.statusCode, 200, 'the link still works before its expiry, whatever runtime.retention says');
  await res.body.dump();

  // Once the last attempt that sent a link is older than the TTL, every link has expired: retention deletes it.
  await db.pool.query(
    `UPDATE rowcast.deliveries SET updated_at = now() - interval '61 minutes' WHERE message_id = $1`,
    [id],
  );
  await applyRetention(db.pool, 60_000, 60_000);
  assert.equal(
    (await db.pool.query(`SELECT 1 FROM rowcast.messages WHERE id = $1`, [id])).rowCount,
    0,
    'deleted once its links expired',
  );
});

test("a function's too-large publish throws, naming the size and the limit", async () => {
  const id = await invokeFunction(db.pool, 'publisher', { padding: 'y'.repeat(300 * 1024) });
  const row = await eventually(
    async () =>
      (await db.pool.query(`SELECT state, last_error FROM rowcast.invocations WHERE id = $1`, [id])).rows.find(
        (r) => r.state === 'failed',
      ),
    'the failed invocation',
  );
  assert.match(
    row.last_error,
    /publish: the message is \d+ bytes, over topic "rejecting"'s maxMessageSize \(262144 bytes\)/,
  );
});

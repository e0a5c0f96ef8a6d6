import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fetch } from 'undici';
import { pauseSubscription, resendDelivery, resumeSubscription, type RowcastRuntime } from '../../src/index.js';
import { formatDelivery } from '../../src/app/cli/delivery-commands.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { startRowcast } from '../../src/app/runtime.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { applyRetention } from '../../src/store/retention.js';
import { launchBrowser, skipWithoutChromium } from '../support/browser.js';

/**
 * A cursor's delivery has no row while all goes well; logs, spans and the live tail name it subscription@seq. The
 * API (and so the dashboard's detail page and `rowcast delivery`) answers for that id from where the cursor stands,
 * and from the row once one exists (a failed attempt, a resend).
 */
const TOKEN = 'cursor-delivery-detail-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let rowcast: RowcastRuntime;
let receiver: WebhookReceiver;
let base: string;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start({ reply: (r) => ({ status: r.path === '/down' ? 500 : 200 }) });
  const origin = receiver.url.replace(/\/hook$/, '');
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
  await applyConfig(db.pool, {
    topics: { orders: {} },
    captures: { orders: { table: 'orders', topic: 'orders' } },
    subscriptions: {
      reader: { topic: 'orders', protocol: 'http', endpoint: `${origin}/reader`, cursor: true },
      picky: {
        topic: 'orders',
        protocol: 'http',
        endpoint: `${origin}/picky`,
        cursor: true,
        filterPolicy: { op: ['UPDATE'] },
      },
      // Awaits its SNS confirmation for a while (the last test).
      late: { topic: 'orders', protocol: 'http', endpoint: `${origin}/late`, cursor: true },
      failing: {
        topic: 'orders',
        protocol: 'http',
        endpoint: `${origin}/down`,
        cursor: true,
        deliveryPolicy: { maxAttempts: 5, minDelay: '1h', maxDelay: '1h' },
      },
    },
  });
  rowcast = await startRowcast({
    databaseUrl: db.url,
    runtime: { ...FAST_RUNTIME, http: { port: 0, host: '127.0.0.1', token: TOKEN } },
  });
  base = `${rowcast.httpUrl!}/api`;
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

async function call(path: string, method = 'GET'): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { method, headers: auth });
  return { status: res.status, body: await res.json() };
}

/** A row's message in the topic's log: a message row, or a segment's entry (migration 042). */
const seqOf = async (id: number): Promise<string> =>
  (
    await db.pool.query(
      `SELECT seq::text FROM rowcast.log_messages('orders', 0, 9223372036854775807)
        WHERE (body::jsonb -> 'after' ->> 'id')::int = $1`,
      [id],
    )
  ).rows[0].seq;

test("a cursor's delivery by its subscription@seq id: delivered, filtered out, failed (its row), pending; resend gives it a row", async () => {
  await db.pool.query(`INSERT INTO orders VALUES (1, 'first')`);
  await eventually(async () => (await db.pool.query('SELECT 1 FROM rowcast.messages')).rowCount === 1, 'routed');
  const seq = await seqOf(1);

  const done = await eventually(async () => {
    const r = await call(`/deliveries/reader@${seq}`);
    return r.status === 200 && r.body.state === 'done' && r.body;
  }, 'reader@seq delivered');
  assert.equal(done.id, `reader@${seq}`);
  assert.equal(done.subscription, 'reader');
  assert.equal(done.topic, 'orders');
  assert.equal(done.attempts, 1);
  assert.deepEqual(done.attemptLog, []);
  assert.ok(BigInt(done.cursor.passed) >= BigInt(seq));
  assert.equal(JSON.parse(done.message.body).after.note, 'first');
  assert.equal(receiver.requests.filter((r) => r.path === '/reader').length, 1);
  assert.match(formatDelivery(done), /read through a cursor, which has passed seq \d+; it records no attempts/);

  const filtered = await call(`/deliveries/picky@${seq}`);
  assert.equal(filtered.status, 404);
  assert.match(filtered.body.error.message, /picky's filter policy does not match the message/);
  // A cursor passes over what an SNS subscription gets while it awaits its confirmation: nothing.
  await db.pool.query(`UPDATE rowcast.subscriptions SET sns_state = 'pending_confirmation' WHERE name = 'picky'`);
  const unconfirmed = await call(`/deliveries/picky@${seq}`);
  assert.equal(unconfirmed.status, 404);
  assert.match(unconfirmed.body.error.message, /picky is waiting for its SNS confirmation: it gets no messages/);
  assert.deepEqual((await call('/deliveries?subscription=picky')).body.items, [], 'nor is it listed');
  await db.pool.query(`UPDATE rowcast.subscriptions SET sns_state = 'confirmed' WHERE name = 'picky'`);

  // A failed attempt leaves a row: the cursor's id answers with it, attempt history and all.
  const failed = await eventually(async () => {
    const r = await call(`/deliveries/failing@${seq}`);
    return r.status === 200 && r.body.attemptLog.length === 1 && r.body;
  }, 'the failed attempt recorded');
  assert.match(failed.id, /^\d+$/);
  assert.deepEqual([failed.state, failed.attempts, failed.lastStatus], ['pending', 1, 500]);
  assert.equal(failed.cursor, undefined);

  for (const [id, status, message] of [
    [`nope@${seq}`, 404, /there is no subscription nope/],
    ['reader@999999', 404, /topic orders has no message 999999/],
    ['reader-1', 400, /subscription@seq/],
  ] as const) {
    const r = await call(`/deliveries/${id}`);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.body.error.message, message);
  }
  const redrive = await call(`/deliveries/reader@${seq}/redrive`, 'POST');
  assert.equal(redrive.status, 409);
  assert.match(redrive.body.error.message, /is done, not dead/);

  // Resent: the message gets a row, sent again as the same message.
  assert.deepEqual((await call(`/deliveries/reader@${seq}/resend`, 'POST')).body, { resent: 1 });
  await eventually(() => receiver.requests.filter((r) => r.path === '/reader').length === 2, 'sent again');
  const sent = receiver.requests.filter((r) => r.path === '/reader').map((r) => r.headers['webhook-id']);
  assert.equal(sent[0], sent[1], 'the same webhook-id');
  const resent = await eventually(async () => {
    const r = (await call(`/deliveries/reader@${seq}`)).body;
    return r.state === 'done' && r;
  }, 'the resend delivered');
  assert.match(resent.id, /^\d+$/);
  assert.deepEqual(
    resent.attemptLog.map((a: { outcome: string }) => a.outcome),
    ['delivered', 'resent', 'delivered'],
    "the cursor's delivery, the resend, the new one",
  );

  // Paused: what its cursor has not passed is pending.
  await pauseSubscription(db.pool, 'reader');
  await db.pool.query(`INSERT INTO orders VALUES (2, 'second')`);
  await eventually(async () => (await db.pool.query('SELECT 1 FROM rowcast.messages')).rowCount === 2, 'routed');
  const seq2 = await seqOf(2);
  const pending = await call(`/deliveries/reader@${seq2}`);
  assert.deepEqual([pending.body.state, pending.body.attempts], ['pending', 0]);

  // The subscription's list: newest message first, each by its row or its cursor; a page by message seq.
  const list = async (query: string) => (await call(`/deliveries?subscription=${query}`)).body;
  const brief = (items: { id: string; state: string }[]) => items.map((d) => [d.id, d.state]);
  assert.deepEqual(brief((await list('reader')).items), [
    [`reader@${seq2}`, 'pending'],
    [resent.id, 'done'],
  ]);
  assert.deepEqual(brief((await list('reader&status=pending')).items), [[`reader@${seq2}`, 'pending']]);
  assert.deepEqual(brief((await list('reader&status=done')).items), [[resent.id, 'done']]);
  const first = await list('reader&limit=1');
  assert.deepEqual(brief(first.items), [[`reader@${seq2}`, 'pending']]);
  const second = await list(`reader&limit=1&cursor=${first.nextCursor}`);
  assert.deepEqual([brief(second.items), second.nextCursor], [[[resent.id, 'done']], null]);
  assert.deepEqual((await list('picky')).items, [], 'neither INSERT matches its filter policy');
  const rowKeyed = (await list('reader&rowKey=id%3D2')).items;
  assert.deepEqual([rowKeyed.length, rowKeyed[0].rowKey, rowKeyed[0].op], [1, { id: 2 }, 'INSERT']);
});

test(
  "the live tail links a cursor's delivery to its page in the dashboard, which says where the cursor stands",
  {
    skip: skipWithoutChromium,
  },
  async () => {
    await resumeSubscription(db.pool, 'reader');
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(30_000);
      await page.goto(`${rowcast.httpUrl}/dashboard`);
      await page.getByLabel('API token').fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Live tail' }).click();
      await page.getByRole('status').filter({ hasText: 'live' }).first().waitFor();
      await db.pool.query(`INSERT INTO orders VALUES (3, 'third')`);
      const seq = await eventually(() => seqOf(3).catch(() => null), 'routed');
      await page.getByRole('log').locator(`a[href$="deliveries/reader%40${seq}"]`).first().click();
      await page.getByRole('heading', { name: `Delivery reader@${seq}` }).waitFor();
      await page.getByText(/read through a cursor, which has passed seq \d+/).waitFor();
      // Done once its range completed (a moment after the attempt the tail showed); the page refreshes itself.
      await page.locator('.facts .badge').filter({ hasText: 'done' }).waitFor();
    } finally {
      await browser.close();
    }
  },
);

test("resends at once of a cursor's delivery give it one row", async () => {
  // Whether or not the dashboard's test ran and resumed it.
  await resumeSubscription(db.pool, 'reader');
  await db.pool.query(`INSERT INTO orders VALUES (4, 'fourth')`);
  const seq = await eventually(() => seqOf(4).catch(() => null), 'routed');
  await eventually(
    async () => (await call(`/deliveries/reader@${seq}`)).body.state === 'done',
    'delivered through the cursor',
  );
  const id = `reader@${seq}`;
  const resends = await Promise.allSettled(Array.from({ length: 4 }, () => resendDelivery(db.pool, id)));
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
      WHERE d.subscription = 'reader' AND m.seq = $1`,
    [seq],
  );
  assert.equal(rows[0].n, 1, 'one row for the message, whichever resend made it');
  assert.ok(resends.some((r) => r.status === 'fulfilled'));
  // The others resent that row, or found it on its way already.
  for (const r of resends) if (r.status === 'rejected') assert.match(String(r.reason), /on its way already/);
});

test('a message a cursor passed while its SNS subscription awaited confirmation does not read as delivered once it is confirmed', async () => {
  const leasedTo = async () =>
    (await db.pool.query(`SELECT leased_to::text FROM rowcast.cursors WHERE subscription = 'late'`)).rows[0].leased_to;
  const toLate = () => receiver.requests.filter((r) => r.path === '/late');
  const before = toLate().length;
  await db.pool.query(`UPDATE rowcast.subscriptions SET sns_state = 'pending_confirmation' WHERE name = 'late'`);
  await db.pool.query(`INSERT INTO orders VALUES (5, 'while unconfirmed')`);
  const skipped = await eventually(() => seqOf(5).catch(() => null), 'routed');
  await eventually(async () => BigInt(await leasedTo()) >= BigInt(skipped), 'the cursor passed it');
  await db.pool.query(`UPDATE rowcast.subscriptions SET sns_state = 'confirmed' WHERE name = 'late'`);
  await db.pool.query(`INSERT INTO orders VALUES (6, 'once confirmed')`);
  const sent = await eventually(() => seqOf(6).catch(() => null), 'routed');
  await eventually(
    async () => (await call(`/deliveries/late@${sent}`)).body.state === 'done',
    'delivered through the cursor',
  );
  assert.deepEqual(
    toLate()
      .slice(before)
      .map((r) => JSON.parse(r.body).body.after.note),
    ['once confirmed'],
  );

  const passed = await call(`/deliveries/late@${skipped}`);
  assert.equal(passed.status, 404, JSON.stringify(passed.body));
  assert.match(passed.body.error.message, /late was waiting for its SNS confirmation .* so it was not sent/);
  const listed = (await call('/deliveries?subscription=late')).body.items.map((i: { id: string }) => i.id);
  assert.ok(listed.includes(`late@${sent}`), JSON.stringify(listed));
  assert.ok(!listed.includes(`late@${skipped}`), JSON.stringify(listed));

  // The stretch is kept while its topic keeps a message of it, and goes with the last one.
  const stretches = async () =>
    (await db.pool.query(`SELECT from_seq, to_seq FROM rowcast.cursor_skips WHERE subscription = 'late'`)).rows;
  assert.ok(
    (await stretches()).some((k) => BigInt(k.from_seq) < BigInt(skipped) && BigInt(k.to_seq) >= BigInt(skipped)),
  );
  await applyRetention(db.pool, 3_600_000, 3_600_000);
  assert.ok((await stretches()).length > 0, 'kept while its message is');
  // The topic's messages up to it: its rows, and the segments that hold them (migration 042).
  await db.pool.query(`DELETE FROM rowcast.messages WHERE topic = 'orders' AND seq <= $1`, [skipped]);
  await db.pool.query(`DELETE FROM rowcast.log_segments WHERE topic = 'orders' AND last_seq <= $1`, [skipped]);
  await applyRetention(db.pool, 3_600_000, 3_600_000);
  assert.deepEqual(await stretches(), []);
});

test("a test message sent to one subscription reaches it once, and none of its topic's other cursors", async () => {
  const { status, body } = await call('/subscriptions/reader/test', 'POST');
  assert.equal(status, 200, JSON.stringify(body));
  const { seq } = (await db.pool.query(`SELECT seq::text FROM rowcast.messages WHERE id = $1`, [body.messageId]))
    .rows[0];
  // The other cursor passes it with no range left open (a range of nothing to send would never complete).
  await eventually(
    async () =>
      (
        await db.pool.query(
          `SELECT c.leased_to >= $1 AND b.pending + b.in_flight = 0 AS passed
             FROM rowcast.cursors c, rowcast.cursor_backlog(c.subscription) b WHERE c.subscription = 'late'`,
          [seq],
        )
      ).rows[0].passed,
    'late passed the test message',
  );
  // A later message delivered through each cursor: both have passed the test message by then.
  await db.pool.query(`INSERT INTO orders VALUES (7, 'after the test')`);
  const later = await eventually(() => seqOf(7).catch(() => null), 'routed');
  for (const sub of ['reader', 'late'])
    await eventually(
      async () => (await call(`/deliveries/${sub}@${later}`)).body.state === 'done',
      `order 7 delivered to ${sub}`,
    );
  const sent = receiver.requests.filter((r) => r.headers['webhook-id'] === body.messageId).map((r) => r.path);
  assert.deepEqual(sent, ['/reader'], 'once, to its recipient only');
  const { rows } = await db.pool.query(`SELECT subscription FROM rowcast.deliveries WHERE message_id = $1`, [
    body.messageId,
  ]);
  assert.deepEqual(
    rows.map((r) => r.subscription),
    ['reader'],
    'no failed attempt of another cursor either',
  );
  const passed = await call(`/deliveries/late@${seq}`);
  assert.equal(passed.status, 404, JSON.stringify(passed.body));
  assert.match(passed.body.error.message, /sent to reader only \(a test message\)/);
  const listed = (await call('/deliveries?subscription=late')).body.items.map((i: { id: string }) => i.id);
  assert.ok(!listed.includes(`late@${seq}`), JSON.stringify(listed));
});

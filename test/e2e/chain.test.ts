import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateSecret, getDelivery } from '../../src/index.js';
import { eventually, settled, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
const secret = generateSecret();

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: secret },
    tables: `
    CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, total numeric(20,4), placed_at timestamptz, note text);
    CREATE TABLE order_lines (order_id bigint, line int, qty int, PRIMARY KEY (order_id, line));
    CREATE TABLE audit (who text, what text);`,
    config: ({ receiver }) => ({
      topics: { orders: {}, lines: {}, audit: {} },
      captures: {
        'orders-row': {
          table: 'orders',
          topic: 'orders',
          operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'],
          subject: 'order changed',
        },
        'lines-diff': { table: 'public.order_lines', topic: 'lines', payload: 'diff' },
        'audit-keys': { table: { schema: 'public', name: 'audit' }, topic: 'audit', payload: 'keys' },
      },
      subscriptions: {
        'orders-hook': { topic: 'orders', protocol: 'http', endpoint: receiver.url, secret },
        'lines-hook': { topic: 'lines', protocol: 'http', endpoint: receiver.url, secret, format: 'raw' },
        'audit-hook': { topic: 'audit', protocol: 'http', endpoint: receiver.url, secret },
      },
    }),
  }));
});

after(() => close?.());

const forSubscription = (name: string) => receiver.requests.filter((r) => r.headers['rowcast-subscription'] === name);

describe('capture → topic → signed webhook', () => {
  test('INSERT, UPDATE and DELETE arrive with the row, signed, with full precision', async () => {
    await db.pool.query(
      `INSERT INTO orders VALUES (9007199254740993, 'new', 12345678901234.5670, '2026-01-02 03:04:05.123456+05:30', 'first')`,
    );
    await db.pool.query(`UPDATE orders SET status = 'paid' WHERE id = 9007199254740993`);
    await db.pool.query(`DELETE FROM orders WHERE id = 9007199254740993`);
    const got = await eventually(
      () => forSubscription('orders-hook').length >= 3 && forSubscription('orders-hook'),
      'three order notifications',
    );
    assert.ok(
      got.every((r) => r.verified),
      'every request carries a valid Standard Webhooks signature',
    );
    const byOp = new Map(got.map((r) => [r.json.body.op, r.json]));
    const insert = byOp.get('INSERT');
    assert.equal(insert.subject, 'order changed');
    assert.equal(insert.topic, 'orders');
    assert.deepEqual(insert.attributes, { op: 'INSERT', schema: 'public', table: 'orders', capture: 'orders-row' });
    // bigint and numeric arrive as exact strings; the wire text has every digit.
    assert.equal(insert.body.after.id, '9007199254740993');
    assert.equal(insert.body.after.total, '12345678901234.5670');
    assert.deepEqual(insert.body.key, { id: '9007199254740993' });
    assert.equal(new Date(insert.body.after.placed_at).toISOString(), '2026-01-01T21:34:05.123Z');
    assert.equal(insert.body.before, null);
    assert.equal(byOp.get('UPDATE').body.after.status, 'paid');
    assert.equal(byOp.get('DELETE').body.after, null);
    assert.equal(byOp.get('DELETE').body.before.status, 'paid');
    assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 3, 'each message has its own id');
    for (const r of got) assert.equal(r.headers['webhook-id'], r.json.id);
  });

  test('diff payload: old and new row and the changed columns; raw format sends the body alone', async () => {
    await db.pool.query(`INSERT INTO order_lines VALUES (1, 1, 5)`);
    await db.pool.query(`UPDATE order_lines SET qty = 7 WHERE order_id = 1 AND line = 1`);
    const got = await eventually(
      () => forSubscription('lines-hook').length >= 2 && forSubscription('lines-hook'),
      'two line notifications',
    );
    const update = got.map((r) => r.json).find((b) => b.op === 'UPDATE');
    assert.deepEqual(update.before, { order_id: '1', line: 1, qty: 5 });
    assert.deepEqual(update.after, { order_id: '1', line: 1, qty: 7 });
    assert.deepEqual(update.changed, ['qty']);
    assert.deepEqual(update.key, { order_id: '1', line: 1 });
    assert.equal(update.source.table, 'order_lines');
  });

  test('keys payload on a table without a primary key carries the whole row as its key', async () => {
    await db.pool.query(`INSERT INTO audit VALUES ('ann', 'login')`);
    const [got] = await eventually(
      () => forSubscription('audit-hook').length >= 1 && forSubscription('audit-hook'),
      'an audit notification',
    );
    assert.deepEqual(got!.json.body.key, { who: 'ann', what: 'login' });
    assert.equal(got!.json.body.after, null);
  });

  test('a rolled-back transaction notifies nobody; the one after it does', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO orders VALUES (100, 'rolled back', 1, now(), null)`);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await db.pool.query(`INSERT INTO orders VALUES (101, 'committed', 1, now(), null)`);
    await eventually(
      () => forSubscription('orders-hook').some((r) => r.json.body.after?.id === '101'),
      'the committed row',
    );
    // The committed row was routed after the rolled-back one would have been: nothing else is coming.
    assert.equal(forSubscription('orders-hook').filter((r) => r.json.body.after?.id === '100').length, 0);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.events WHERE after->>'id' = '100'`);
    assert.equal(rows[0].n, 0);
  });

  test('TRUNCATE is one statement-level event', async () => {
    await db.pool.query('TRUNCATE orders');
    const got = await eventually(
      () => forSubscription('orders-hook').find((r) => r.json.body.op === 'TRUNCATE'),
      'a TRUNCATE notification',
    );
    assert.equal(got.json.body.key, null);
    assert.equal(got.json.body.source.table, 'orders');
  });

  test('a multi-row statement yields one message per row, each delivered once', async () => {
    const before = forSubscription('orders-hook').length;
    await db.pool.query(`INSERT INTO orders SELECT g, 'bulk', g, now(), null FROM generate_series(1000, 1199) g`);
    const bulk = () => forSubscription('orders-hook').slice(before);
    await eventually(() => new Set(bulk().map((r) => r.json.id)).size >= 200, '200 bulk notifications');
    // Nothing left to deliver (rows or cursors); then no row is left unfinished (a cursor's failures are rows too).
    await settled(db.pool);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state <> 'done'`)).rows[0].n ===
        0,
      'all deliveries recorded as done',
    );
    const received = new Map<string, number>();
    for (const r of bulk()) received.set(r.json.id, (received.get(r.json.id) ?? 0) + 1);
    assert.equal(received.size, 200, 'one message per row');
    assert.equal(new Set(bulk().map((r) => r.json.body.after.id)).size, 200, 'every row');
    // Each message once — or again only after an attempt the database counted as failed (at-least-once: on a starved
    // machine an answer can come after the attempt's 10 s timeout), never as a second message.
    // Each message's delivery as the admin API reads it: its row, or (through a cursor, first attempt) its cursor's.
    // The topic's log (migration 042): its message rows, or its segments' entries where routing wrote a segment.
    const { rows: messages } = await db.pool.query<{ seq: string }>(
      `SELECT seq::text FROM rowcast.log_messages('orders', 0, 9223372036854775807) WHERE id = ANY ($1::uuid[])`,
      [[...received.keys()]],
    );
    const rows: { id: string; state: string; attempts: number }[] = [];
    for (const m of messages) {
      const d = await getDelivery(db.pool, `orders-hook@${m.seq}`);
      rows.push({ id: d.messageId, state: d.state, attempts: d.attempts });
    }
    assert.equal(rows.length, 200);
    for (const row of rows) {
      assert.equal(row.state, 'done', `message ${row.id} delivered`);
      assert.ok(received.get(row.id)! <= row.attempts, `message ${row.id} sent once per attempt`);
    }
  });
});

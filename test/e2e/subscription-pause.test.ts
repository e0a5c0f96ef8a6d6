import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getStatus, resumeSubscription, type RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * A pause holds from its commit. A process learns of it by NOTIFY and a reload of its subscriptions, but it may miss
 * the NOTIFY (its listener reconnecting) or claim before the reload: what it claims, leases from a cursor or is
 * leased by routing must still be only active subscriptions' work. Here the pause is committed with no NOTIFY at
 * all, as such a process sees it until its periodic reload, 30 s later.
 */
let db: TestDatabase;
let rowcast: RowcastRuntime;
const receivers = {} as Record<'witness' | 'rows' | 'cursor', WebhookReceiver>;

before(async () => {
  db = await createTestDatabase();
  for (const name of ['witness', 'rows', 'cursor'] as const) receivers[name] = await WebhookReceiver.start();
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { orders: {} },
    captures: { orders: { table: 'orders', topic: 'orders' } },
    subscriptions: {
      witness: { topic: 'orders', protocol: 'http', endpoint: receivers.witness.url },
      rows: { topic: 'orders', protocol: 'http', endpoint: receivers.rows.url },
      cursor: { topic: 'orders', protocol: 'http', endpoint: receivers.cursor.url, cursor: true },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  for (const r of Object.values(receivers)) await r?.close();
  await db?.drop();
});

const ids = (r: WebhookReceiver) =>
  r.requests.map((q) => (q.json as any)?.body?.after?.id as number).sort((a, b) => a - b);

test('a pause the process has not heard of: nothing more is claimed, leased or routed to it; resume delivers the rest', async () => {
  await db.pool.query('INSERT INTO orders VALUES (1)');
  for (const r of Object.values(receivers)) await eventually(() => r.requests.length === 1, 'row 1 everywhere');

  // Committed as `rowcast pause` commits it, without the NOTIFY that makes the process reload.
  await db.pool.query(
    `UPDATE rowcast.subscriptions SET state = 'paused', state_reason = 'paused by the test' WHERE name IN ('rows', 'cursor')`,
  );
  // Two rounds of work after the pause: the witness got both, so every claim for the second came after the pause.
  await db.pool.query('INSERT INTO orders SELECT g FROM generate_series(2, 6) g');
  await eventually(() => receivers.witness.requests.length === 6, 'rows 2-6 at the witness');
  await db.pool.query('INSERT INTO orders VALUES (7)');
  await eventually(() => receivers.witness.requests.length === 7, 'row 7 at the witness');

  assert.deepEqual(ids(receivers.rows), [1], 'nothing sent to the paused subscription with delivery rows');
  assert.deepEqual(ids(receivers.cursor), [1], 'nothing sent to the paused cursor');
  const status = (await getStatus(db.pool)).subscriptions;
  for (const name of ['rows', 'cursor'])
    assert.equal(status.find((s) => s.name === name)!.pending, 6, `${name}: rows 2-7 wait, pending`);

  for (const name of ['rows', 'cursor']) await resumeSubscription(db.pool, name);
  for (const name of ['rows', 'cursor'] as const)
    await eventually(() => ids(receivers[name]).join() === '1,2,3,4,5,6,7', `${name}: rows 2-7 after resume`);
});

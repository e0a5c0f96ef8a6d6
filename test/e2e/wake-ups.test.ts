import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  routerAsleep,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// The router's sleeping flag (docs/architecture.md, Wake-ups) end to end: writers NOTIFY only while it is set, and
// whatever the router decides after each pass, every event is delivered and the router goes back to sleep. The
// decisions themselves (a trickle keeps the flag, load clears it) are driven directly in test/unit/wake-policy.test.ts;
// what they cost on a machine (flips, NOTIFY share) is measured by bench/probes/wake-ups.ts, not asserted here.

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let listener: pg.Client;
let notifies = 0;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
    subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: receiver.url } },
  });
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on('notification', (n) => n.channel === 'rowcast' && notifies++);
  await listener.query('LISTEN rowcast');
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await listener?.end();
  await receiver?.close();
  await db?.drop();
});

const sleeping = () => routerAsleep(db.pool);

test('a trickle: each commit made while the router sleeps sends a NOTIFY, and each event is delivered', async () => {
  await sleeping();
  const first = notifies;
  for (let id = 1; id <= 20; id++) {
    // Asleep, the flag is set: the writer's trigger sees it and notifies.
    await sleeping();
    await db.pool.query('INSERT INTO items VALUES ($1)', [id]);
    await eventually(() => notifies >= first + id, `the NOTIFY of commit ${id}`);
    await eventually(() => receiver.requests.length >= id, `the delivery of row ${id}`);
  }
  await sleeping();
});

test('a burst from 4 writers: every row is delivered, and the router goes back to sleep', async () => {
  await sleeping();
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      for (let i = 0; i < 250; i++) await client.query('INSERT INTO items VALUES ($1)', [1000 + w * 1000 + i]);
    } finally {
      await client.end();
    }
  });
  await Promise.all(writers);
  await eventually(() => receiver.requests.length >= 1020, 'every row delivered', 30_000);
  const ids = new Set(receiver.requests.map((r) => String(r.json.body.after.id)));
  assert.equal(ids.size, 1020, 'each of the 20 + 1,000 rows arrived');
  await sleeping();
});

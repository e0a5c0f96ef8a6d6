import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { RowcastRuntime } from '../../src/dispatcher/runtime.js';
import { applyConfig, createTestDatabase, eventually, startTestRowcast, type TestDatabase } from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// The router's sleeping flag (docs/architecture.md, Wake-ups): writers NOTIFY only while it is set. A trickle keeps
// it set (one routing statement per wake-up); load clears it (no NOTIFY per commit).

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
  // Counts the flag's flips (this test database's own instrumentation; an unlogged counter, like the flag's table).
  await db.pool.query(`
    CREATE UNLOGGED TABLE flips (n int NOT NULL); INSERT INTO flips VALUES (0);
    CREATE FUNCTION count_flip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE flips SET n = n + 1; RETURN NULL; END $$;
    CREATE TRIGGER count_flip AFTER UPDATE OF sleeping ON rowcast.dispatchers FOR EACH ROW
      WHEN (OLD.sleeping IS DISTINCT FROM NEW.sleeping) EXECUTE FUNCTION count_flip();`);
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

const sleeping = () => eventually(async () => (await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE sleeping')).rowCount, 'the router to sleep');
const flips = async () => (await db.pool.query<{ n: number }>('SELECT n FROM flips')).rows[0]!.n;

test('a trickle: every event wakes the router by NOTIFY, which keeps its flag set rather than flipping it per event', async () => {
  await sleeping();
  const before = await flips();
  for (let id = 1; id <= 20; id++) {
    await db.pool.query('INSERT INTO items VALUES ($1)', [id]);
    await new Promise((r) => setTimeout(r, 40));
  }
  await eventually(() => receiver.requests.length >= 20, 'twenty deliveries');
  // Clearing and setting the flag around every event would be 40 flips. A few may happen on a loaded machine (a
  // slow pass that meets NOTIFYs already waiting counts as load), hence the margin.
  assert.ok((await flips()) - before <= 12, `the flag flipped ${(await flips()) - before} times for 20 events 40 ms apart`);
  await sleeping();
});

test('a burst: the router clears its flag, so most commits send no NOTIFY, and every row is delivered', async () => {
  await sleeping();
  notifies = 0;
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
  assert.ok(notifies < 500, `${notifies} of 1,000 commits sent a NOTIFY`);
  await sleeping();
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RowcastRuntime } from '../../src/index.js';
import { routeEvents } from '../../src/routing/route-events.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * A message routed as its subscription switched to a cursor may have a delivery row and lie in the cursor's range
 * too (both, never neither). When the cursor's attempt fails, the range's completion writes a row for the retry,
 * unless the message has one already: that row retries it, and a second would send it twice more.
 */
let db: TestDatabase;
let rowcast: RowcastRuntime | undefined;
let receiver: WebhookReceiver;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start({ reply: () => ({ status: 500, body: 'down for the test' }) });
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items' } },
    subscriptions: {
      switched: {
        topic: 'items',
        protocol: 'http',
        endpoint: receiver.url,
        cursor: true,
        deliveryPolicy: { maxAttempts: 5, minDelay: '1h', maxDelay: '1h' },
      },
    },
  });
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

test("a cursor's failed attempt of a message that has a row already leaves that one row", async () => {
  await db.pool.query('INSERT INTO items VALUES (1), (2)');
  while ((await routeEvents(db.pool, 10)).events);
  // Message 1 was also given a row, as routing does for a subscription switching to its cursor; not due yet.
  // The topic's log: its message rows, or its segment's entries where routing wrote a segment (migration 042).
  const { rows: messages } = await db.pool.query(
    `SELECT id::text, seq::text, (body::jsonb -> 'after' ->> 'id')::int AS item
       FROM rowcast.log_messages('items', 0, 9223372036854775807) ORDER BY seq`,
  );
  assert.deepEqual(
    messages.map((m) => m.item),
    [1, 2],
  );
  // A delivery row refers to a message row: an entry's is made from it, as a completion makes one (none is made
  // where the message is a row already).
  await db.pool.query(`SELECT rowcast.materialize_segment_messages('items', 0, $1, ARRAY[$2::uuid])`, [
    messages[0].seq,
    messages[0].id,
  ]);
  await db.pool.query(
    `INSERT INTO rowcast.deliveries (message_id, subscription, seq, state, available_at)
     VALUES ($1, 'switched', 1, 'pending', now() + interval '1 hour')`,
    [messages[0].id],
  );

  rowcast = await startTestRowcast(db.url);
  // Both attempted through the cursor, both failed, the range completed: the cursor passed them.
  await eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM rowcast.cursor_leases WHERE subscription = 'switched'`,
    );
    return receiver.requests.length === 2 && rows[0].n === 0;
  }, 'both attempted and the range completed');
  const { rows } = await db.pool.query(
    `SELECT message_id::text, state, attempts FROM rowcast.deliveries WHERE subscription = 'switched' ORDER BY seq`,
  );
  assert.deepEqual(
    rows.map((r) => [r.message_id, r.state, r.attempts]),
    [
      [messages[0].id, 'pending', 0],
      [messages[1].id, 'pending', 1],
    ],
    'the row message 1 had, untouched; a row for the retry of message 2',
  );
});

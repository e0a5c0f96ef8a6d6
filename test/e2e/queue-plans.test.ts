import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createPool, type Pool } from '../../src/index.js';
import { claimDeliveries, completeDeliveries } from '../../src/delivery/delivery-store.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
    // Rows: the statements whose plans are checked here route, claim and record delivery rows.
    subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: false } },
  });
});

after(() => db?.drop());

/** The plans one connection would use for the hot statements it has prepared (EXPLAIN EXECUTE of each). */
async function cachedPlans(pool: Pool): Promise<string> {
  const client = await pool.connect();
  try {
    const plans = [
      `EXPLAIN EXECUTE rowcast_route(500, '{}', '{}', 0, NULL, '{}', '{}', '{}', NULL, '0', NULL, '{}')`,
      `EXPLAIN EXECUTE rowcast_claim_deliveries('{hook}', '{200}', 60000, 'me')`,
      `EXPLAIN EXECUTE rowcast_record_deliveries('{1}', '{1}', '{done}', '{NULL}', '{200}', '{NULL}', '{00000000-0000-0000-0000-000000000000}', '{NULL}', '{false}')`,
    ];
    const text: string[] = [];
    for (const sql of plans) text.push(...(await client.query(sql)).rows.map((r) => r['QUERY PLAN'] as string));
    return text.join('\n');
  } finally {
    client.release();
  }
}

// Prepared statements keep one generic plan per connection, made from the table sizes of the moment: one made on
// an empty install must still read a backlog by index (the benchmark once routed ~500 events/s instead of ~20,000).
test('the queue statements, prepared on empty tables, read the queues by index once they hold a backlog', async () => {
  const queues = createPool(db.url, { max: 1, queues: true });
  try {
    // Enough runs on the empty tables for PostgreSQL to settle on a generic plan.
    for (let i = 0; i < 8; i++) {
      await routeEvents(queues, 500);
      const claimed = await claimDeliveries(queues, new Map([['hook', 200]]), 60_000, 'me');
      await completeDeliveries(
        queues,
        claimed.map((c) => ({ deliveryId: c.deliveryId, attempt: c.attempt, lease: c.lease, state: 'done' })),
      );
      await db.pool.query('INSERT INTO items VALUES ($1)', [i + 1]);
    }
    await db.pool.query('INSERT INTO items SELECT g FROM generate_series(100, 20099) g');
    for (let i = 0; i < 20; i++) await routeEvents(queues, 500);
    const plans = await cachedPlans(queues);
    assert.doesNotMatch(plans, /Seq Scan on (events|deliveries|messages)\b/, plans);
  } finally {
    await queues.end();
  }
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ONE_STATEMENT_SQL, routeEvents } from '../../src/topics/route-events.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)');
  await applyConfig(db.pool, {
    topics: { counters: { fifo: true } },
    captures: { counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] } },
    subscriptions: { ordered: { topic: 'counters', protocol: 'http', endpoint: 'http://127.0.0.1:9/' } },
  });
});

after(() => db?.drop());

// Two processes route at once. Were the later batch to commit first, a FIFO group's second version would be
// claimable (no earlier delivery exists yet) and delivered before the first: routing is one process at a time.
test('routing is serialised: while one router holds a batch, another routes nothing, so no later event of a row overtakes an earlier one', async () => {
  await db.pool.query('INSERT INTO counters VALUES (1, 0)');
  await db.pool.query('UPDATE counters SET v = 1 WHERE id = 1');
  const first = await db.pool.connect();
  try {
    await first.query('BEGIN');
    const { rows } = await first.query(ONE_STATEMENT_SQL, [1]); // routes version 0 and keeps its transaction open
    assert.equal(rows[0].events, 1);
    const meanwhile = await routeEvents(db.pool, 100);
    assert.equal(meanwhile.events, 0, 'a second router must not route version 1 while version 0 is being routed');
    assert.equal(meanwhile.busy, true, 'and it says another router is at work');
    await first.query('COMMIT');
  } finally {
    first.release();
  }
  const next = await routeEvents(db.pool, 100);
  assert.deepEqual([next.events, next.busy], [1, false]);
  const { rows } = await db.pool.query(`SELECT m.body::jsonb -> 'after' ->> 'v' AS v FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id ORDER BY d.seq`);
  assert.deepEqual(rows.map((r) => r.v), ['0', '1']);
});

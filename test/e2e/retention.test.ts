import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { applyRetention } from '../../src/store/retention.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, {
    topics: { t: {} },
    // Rows: this test is about the delivery rows' retention (a cursor keeps what it has not passed: cursor-*.test.ts).
    subscriptions: { s: { topic: 't', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook', cursor: false } },
  });
});
after(() => db?.drop());

test('retention deletes expired history and never undelivered work', async () => {
  const HOUR = 3_600_000;
  await db.pool.query(`
    INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name, captured_at, routed_at) VALUES
      ('c', 't', 'INSERT', 'public', 'x', now() - interval '3 hours', now() - interval '3 hours'),  -- expired
      ('c', 't', 'INSERT', 'public', 'x', now() - interval '3 hours', NULL),                        -- unrouted: kept
      ('c', 't', 'INSERT', 'public', 'x', now(), now());                                           -- recent: kept
    INSERT INTO rowcast.messages (id, topic, body, created_at) VALUES
      ('00000000-0000-0000-0000-000000000001', 't', '"done"', now() - interval '3 hours'),
      ('00000000-0000-0000-0000-000000000002', 't', '"pending"', now() - interval '3 hours'),
      ('00000000-0000-0000-0000-000000000003', 't', '"dead, within deadRetention"', now() - interval '3 hours'),
      ('00000000-0000-0000-0000-000000000004', 't', '"dead, past deadRetention"', now() - interval '30 hours'),
      ('00000000-0000-0000-0000-000000000005', 't', '"done, recent"', now());
    INSERT INTO rowcast.deliveries (message_id, subscription, state) VALUES
      ('00000000-0000-0000-0000-000000000001', 's', 'done'),
      ('00000000-0000-0000-0000-000000000002', 's', 'pending'),
      ('00000000-0000-0000-0000-000000000003', 's', 'dead'),
      ('00000000-0000-0000-0000-000000000004', 's', 'dead'),
      ('00000000-0000-0000-0000-000000000005', 's', 'done');
    INSERT INTO rowcast.invocations (function, payload, source, state, finished_at) VALUES
      ('f', '{}', 'api', 'done', now() - interval '3 hours'),
      ('f', '{}', 'api', 'failed', now() - interval '3 hours'),
      ('f', '{}', 'api', 'pending', NULL),
      ('f', '{}', 'api', 'done', now());`);
  const deleted = await applyRetention(db.pool, 2 * HOUR, 24 * HOUR);
  assert.deepEqual(deleted, { events: 1, messages: 2, invocations: 2 });
  const left = await db.pool.query(`SELECT body FROM rowcast.messages ORDER BY id`);
  assert.deepEqual(
    left.rows.map((r) => r.body),
    ['"pending"', '"dead, within deadRetention"', '"done, recent"'],
  );
  const deliveries = await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries`);
  assert.equal(deliveries.rows[0].n, 3, 'deliveries go with their messages');
  assert.deepEqual(
    await applyRetention(db.pool, 2 * HOUR, 24 * HOUR),
    { events: 0, messages: 0, invocations: 0 },
    'idempotent',
  );
});

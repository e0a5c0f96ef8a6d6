import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { ONE_STATEMENT_SQL, routeEvents } from '../../src/routing/route-events.js';
import { listMigrations, migrate } from '../../src/store/migrate.js';
import { createEmptyDatabase } from '../support/cli.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

// Routing reads events by ticks (transaction-id snapshots, migration 033) and writes nothing per event: an event is
// routed when the tick that holds it is. What must hold: every committed event routed once, in id order within its
// tick, whenever its transaction commits; a rolled-back one never.

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  });
});

after(() => db?.drop());

/** Routes until nothing is left; the item ids of the messages made, in the order routing made them. */
async function routeAll(batchSize = 100): Promise<number[]> {
  const before = (
    await db.pool.query<{ seq: string }>(
      `SELECT coalesce(max(seq), 0) AS seq FROM rowcast.log_messages('items', 0, 9223372036854775807)`,
    )
  ).rows[0]!.seq;
  while ((await routeEvents(db.pool, batchSize)).events);
  const { rows } = await db.pool.query<{ id: number }>(
    `SELECT (body::jsonb -> 'after' ->> 'id')::int AS id FROM rowcast.log_messages('items', $1, 9223372036854775807) ORDER BY seq`,
    [before],
  );
  return rows.map((r) => r.id);
}

const unrouted = async () =>
  (await db.pool.query('SELECT count(*)::int AS n FROM rowcast.unrouted_events()')).rows[0].n;

test('an event whose transaction commits after later events is routed once, in the tick it committed in', async () => {
  const early = await db.pool.connect();
  try {
    await early.query('BEGIN');
    await early.query('INSERT INTO items VALUES (1)'); // the lower id, still in flight
    await db.pool.query('INSERT INTO items VALUES (2), (3)');
    assert.deepEqual(await routeAll(), [2, 3]);
    assert.equal(await unrouted(), 0, 'the event in flight is nobody’s to count yet');
    await early.query('COMMIT');
  } finally {
    early.release();
  }
  assert.equal(await unrouted(), 1);
  assert.deepEqual(await routeAll(), [1], 'found below the last tick’s end, once');
  assert.deepEqual(await routeAll(), []);
});

test('a rolled-back transaction’s events are never routed', async () => {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO items VALUES (10), (11)');
    await db.pool.query('INSERT INTO items VALUES (12)');
    assert.deepEqual(await routeAll(), [12]);
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }
  await db.pool.query('INSERT INTO items VALUES (13)');
  assert.deepEqual(await routeAll(), [13]);
  assert.equal(await unrouted(), 0);
});

test('a long transaction’s events are routed in id order, a batch at a time, after what committed meanwhile', async () => {
  const long = await db.pool.connect();
  try {
    await long.query('BEGIN');
    await long.query('INSERT INTO items SELECT g FROM generate_series(1000, 1249) g');
    await db.pool.query('INSERT INTO items VALUES (20)');
    assert.deepEqual(await routeAll(30), [20]);
    await long.query('INSERT INTO items SELECT g FROM generate_series(1250, 1299) g');
    await long.query('COMMIT');
  } finally {
    long.release();
  }
  await db.pool.query('INSERT INTO items VALUES (21)');
  const routed = await routeAll(30);
  assert.deepEqual(
    routed.filter((id) => id >= 1000),
    Array.from({ length: 300 }, (_, i) => 1000 + i),
  );
  assert.deepEqual(routed.sort(), [...Array.from({ length: 300 }, (_, i) => 1000 + i), 21].sort());
  assert.equal(await unrouted(), 0);
});

test('a decoded change is routed by the transaction that wrote its event, not by the one it captured', async () => {
  // A logical reader writes events long after their writers committed, and keeps the writer's xid in txid: an xid
  // every tick has seen committed. Routing must go by the transaction that inserted the row.
  await db.pool.query('INSERT INTO items VALUES (40)');
  assert.deepEqual(await routeAll(), [40]);
  await db.pool.query(
    `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name, after, txid)
     VALUES ('items', 'items', 'INSERT', 'public', 'items', '{"id": 41}', (SELECT min(txid) FROM rowcast.events))`,
  );
  assert.deepEqual(await routeAll(), [41]);
  assert.equal(await unrouted(), 0);
});

test('a router whose snapshot predates another router’s commit routes nothing and leaves the tick alone', async () => {
  // A routing statement's snapshot is taken before it gets the routing lock, so another router may commit in
  // between. Going by the tick its snapshot shows, it would start a tick ending before what the other one routed,
  // and every later pass would route those events again (a duplicate message id, on every pass: fault 05 found
  // it). Here the late snapshot is a repeatable-read transaction's: its statement must route nothing, or fail
  // to serialize, and leave routing as it was.
  assert.deepEqual(await routeAll(), []);
  const late = await db.pool.connect();
  try {
    await late.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await late.query('SELECT 1'); // its snapshot, from here on
    await db.pool.query('INSERT INTO items VALUES (50)');
    assert.deepEqual(await routeAll(), [50]);
    const routed = await late
      .query(ONE_STATEMENT_SQL, [100, [], [], 0, null, [], [], [], null, '0', null, []])
      .then((r) => r.rows[0].events as number)
      .catch((err: Error & { code?: string }) => err.code); // a serialization failure is as good as nothing routed
    assert.ok(routed === 0 || routed === '40001', `routed ${routed}`);
    await late.query(routed === 0 ? 'COMMIT' : 'ROLLBACK');
  } finally {
    late.release();
  }
  await db.pool.query('INSERT INTO items VALUES (51)');
  assert.deepEqual(await routeAll(), [51]);
  assert.equal(await unrouted(), 0);
});

test('routing writes no event row: each keeps the version its writer made', async () => {
  await db.pool.query('INSERT INTO items SELECT g FROM generate_series(30, 39) g');
  const versions = async () =>
    (
      await db.pool.query(
        `SELECT id, xmin::text, ctid::text FROM rowcast.events WHERE (after ->> 'id')::int BETWEEN 30 AND 39 ORDER BY id`,
      )
    ).rows;
  const written = await versions();
  assert.equal(written.length, 10);
  assert.equal((await routeAll()).length, 10);
  assert.deepEqual(await versions(), written);
  assert.equal(
    (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.events e WHERE NOT rowcast.event_routed(e)`)).rows[0]
      .n,
    0,
  );
});

test('an installation routed by routed_at keeps its pending events across the upgrade: each routed once', async () => {
  const empty = await createEmptyDatabase();
  const pool = new pg.Pool({ connectionString: empty.url, max: 3 });
  try {
    // Migrations up to the one before ticks, applied as migrate() does.
    await pool.query(`CREATE SCHEMA rowcast; CREATE TABLE rowcast.schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const m of listMigrations().filter((m) => m.id < 33)) {
      await pool.query(m.sql);
      await pool.query('INSERT INTO rowcast.schema_migrations (id, name, checksum) VALUES ($1, $2, $3)', [
        m.id,
        m.name,
        m.checksum,
      ]);
    }
    await pool.query(`INSERT INTO rowcast.topics (name) VALUES ('items')`);
    const event = (id: number, routed: boolean) =>
      pool.query(
        `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name, after, routed_at)
         VALUES ('items', 'items', 'INSERT', 'public', 'items', jsonb_build_object('id', $1::int), CASE WHEN $2 THEN now() END)`,
        [id, routed],
      );
    await event(1, true);
    await event(2, false);
    await event(3, true);
    await event(4, false);
    // Writers in flight finish first: the migration's index build waits for them.
    assert.deepEqual(
      (await migrate(pool)).applied.filter((name) => name.startsWith('033')),
      ['033_routing_ticks'],
    );
    await event(5, false);
    while ((await routeEvents(pool, 2)).events);
    const { rows } = await pool.query(
      `SELECT (body::jsonb -> 'after' ->> 'id')::int AS id FROM rowcast.log_messages('items', 0, 9223372036854775807) ORDER BY seq`,
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      [2, 4, 5],
    );
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM rowcast.unrouted_events()')).rows[0].n, 0);
  } finally {
    await pool.end();
    await empty.drop();
  }
});

test('a new tick finds its stragglers through events_written_by on connections that plan neither sequential nor bitmap scans', async () => {
  await db.pool.query('INSERT INTO items SELECT g FROM generate_series(10000, 12000) g');
  await routeAll(1000);
  // A connection of its own: the statistics read below count what this backend did since its last report.
  // Routing's settings (createPool's `queues`): a scan that needs a BitmapOr became a read of every event.
  const client = new pg.Client({ connectionString: db.url, options: '-c enable_seqscan=off -c enable_bitmapscan=off' });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT rowcast.committed_since(t.cur, t.hi) FROM rowcast.route_tick t');
    const { rows } = await client.query(
      `SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'rowcast.events'::regclass`,
    );
    assert.equal(Number(rows[0].seq_scan), 0, 'no sequential scan of the events table');
    assert.ok(Number(rows[0].idx_scan) >= 1, 'read by index');
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
});

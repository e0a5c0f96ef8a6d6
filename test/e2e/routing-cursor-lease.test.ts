import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { ONE_STATEMENT_SQL, routeEvents } from '../../src/routing/route-events.js';
import { claimInvocations, completeInvocations, releaseSlots } from '../../src/functions/invocation-store.js';
import { INITIAL_HORIZON, readLease } from '../../src/store/log-leases.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

// Routing leases the messages it appends to the routing process's cursors in the same statement (migration 035), as
// it leases new delivery rows: the send needs no claim first. It must lease only what a claim would: within the
// settled horizon (another writer of messages still running holds it back), never waiting on a cursor another
// process is leasing from, and only as many as the process has room for.

let db: TestDatabase;
const owner = 'routing-process';

/** reader's cursor: true, then false for the last test (a switch back to rows). */
const config = (readerCursor: boolean): RowcastConfigInput => ({
  topics: { items: {}, other: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  functions: { work: { handler: 'test/fixtures/handlers/publisher.ts' } },
  subscriptions: {
    reader: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/reader', cursor: readerCursor },
    picky: {
      topic: 'items',
      protocol: 'http',
      endpoint: 'http://127.0.0.1:9/picky',
      cursor: true,
      filterPolicy: { op: ['DELETE'] },
    },
  },
});

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, config(true));
});

after(() => db?.drop());

beforeEach(async () => {
  // Route what an earlier test left, and give every cursor's ranges back: each test starts with the log settled.
  await routeEvents(db.pool, 1000);
  await db.pool.query('DELETE FROM rowcast.cursor_leases');
  await db.pool.query(
    `UPDATE rowcast.cursors SET leased_to = coalesce(pg_sequence_last_value('rowcast.messages_seq_seq'::regclass), 0)`,
  );
});

const direct = (wanted: [string, number][]) => ({
  deliveries: { wanted: new Map(wanted), leaseMs: 60_000, owner, claimedAt: Date.now(), horizon: INITIAL_HORIZON },
});

const ids = (rows: Record<string, unknown>[]) =>
  readLease(rows).messages.map((m) => [m.range.subscription, JSON.parse(m.delivery.message.body).after.id]);

test('routing leases its new messages to the caller’s cursors, as many as each has room for, in one statement', async () => {
  await db.pool.query('INSERT INTO items SELECT g FROM generate_series(1, 5) g');
  const routed = await routeEvents(
    db.pool,
    100,
    direct([
      ['reader', 3],
      ['picky', 10],
    ]),
  );
  assert.equal(routed.events, 5);
  // Filter policies are the reader's to apply (in memory): the lease hands out the range whole.
  assert.deepEqual(ids(routed.leased), [
    ['picky', 1],
    ['picky', 2],
    ['picky', 3],
    ['picky', 4],
    ['picky', 5],
    ['reader', 1],
    ['reader', 2],
    ['reader', 3],
  ]);
  assert.equal(routed.cursorsCovered, false, 'reader has two messages left to claim');
  const { rows } = await db.pool.query(
    `SELECT subscription, lease_owner, to_seq - from_seq AS span, expires_at > now() + interval '50 seconds' AS leased
       FROM rowcast.cursor_leases ORDER BY subscription`,
  );
  assert.deepEqual(
    rows.map((r) => [r.subscription, r.lease_owner, Number(r.span) >= 3, r.leased]),
    [
      ['picky', owner, true, true],
      ['reader', owner, true, true],
    ],
  );

  await db.pool.query('INSERT INTO items VALUES (6)');
  const next = await routeEvents(
    db.pool,
    100,
    direct([
      ['reader', 10],
      ['picky', 10],
    ]),
  );
  // reader's two left over come with the new one: a range is the cursor's next, wherever it starts.
  assert.deepEqual(ids(next.leased), [
    ['picky', 6],
    ['reader', 4],
    ['reader', 5],
    ['reader', 6],
  ]);
  assert.equal(next.cursorsCovered, true);
});

test('routing leases nothing past a message another transaction is still writing', async () => {
  const writer = await db.pool.connect();
  try {
    await writer.query('BEGIN');
    await writer.query(`INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'items', 'late')`);
    await db.pool.query('INSERT INTO items VALUES (10)');
    const routed = await routeEvents(db.pool, 100, direct([['reader', 10]]));
    assert.equal(routed.events, 1);
    // Its seq is lower than the routed message's: leasing past it could skip it once it commits.
    assert.deepEqual(ids(routed.leased), []);
    assert.equal(routed.cursorsCovered, false);
    await writer.query('COMMIT');
  } finally {
    writer.release();
  }
  const routed = await routeEvents(db.pool, 100, direct([['reader', 10]]));
  assert.equal(routed.events, 0, 'nothing left to route: no lease either');
  // The claims take it from here (the same function, waiting for the writer); nothing was lost meanwhile. Both are
  // in the topic's log: message rows, or a segment's entry where routing wrote a segment (migration 042).
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM rowcast.cursors c, rowcast.log_messages('items', c.leased_to, 9223372036854775807) m
      WHERE c.subscription = 'reader'`,
  );
  assert.equal(rows[0].n, 2);
});

test('routing that drew every seq past its settled horizon leases without looking for other writers (migration 049)', async () => {
  const { rows } = await db.pool.query(
    `SELECT coalesce(pg_sequence_last_value('rowcast.messages_seq_seq'::regclass), 0)::text AS h`,
  );
  const settledAt = (h: string) => ({
    deliveries: {
      ...direct([['reader', 10]]).deliveries,
      horizon: { settled: h, barrierSeq: h, barrierWriters: [] },
    },
  });
  const idle = await db.pool.connect();
  try {
    // Holds the log's lock but draws no seq: were the lock table read, it would be a writer to wait for.
    await idle.query('BEGIN');
    await idle.query('UPDATE rowcast.messages SET body = body WHERE false');
    await db.pool.query('INSERT INTO items VALUES (11), (12)');
    const routed = await routeEvents(db.pool, 100, settledAt(rows[0].h));
    assert.deepEqual(ids(routed.leased), [
      ['reader', 11],
      ['reader', 12],
    ]);
    const { horizon } = readLease(routed.leased);
    assert.deepEqual(horizon.barrierWriters, [], 'every seq past the horizon was routing’s own');
    assert.equal(horizon.settled, horizon.barrierSeq, 'settled up to the sequence’s end');
    await idle.query('COMMIT');

    // One seq drawn by another writer past the same horizon: that writer is looked for, and waited for.
    await idle.query('BEGIN');
    await idle.query(`INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'other', 'late')`);
    await db.pool.query('INSERT INTO items VALUES (13)');
    const held = await routeEvents(db.pool, 100, settledAt(horizon.settled));
    assert.deepEqual(ids(held.leased), [], 'nothing past a seq another transaction is still writing');
    assert.equal(readLease(held.leased).horizon.barrierWriters.length, 1);
    await idle.query('COMMIT');
  } finally {
    // Destroyed, not returned: a failed assertion must not leave its transaction open for the next tests.
    idle.release(true);
  }
});

test('routing does not wait for a cursor another process is leasing from: it leaves the messages to the claims', async () => {
  const other = await db.pool.connect();
  try {
    await other.query('BEGIN');
    await other.query(`SELECT 1 FROM rowcast.cursors WHERE subscription = 'reader' FOR UPDATE`);
    await db.pool.query('INSERT INTO items VALUES (20)');
    const routed = await routeEvents(
      db.pool,
      100,
      direct([
        ['reader', 10],
        ['picky', 10],
      ]),
    );
    assert.equal(routed.events, 1);
    assert.deepEqual(ids(routed.leased), [['picky', 20]]);
    assert.equal(routed.cursorsCovered, false);
    await other.query('COMMIT');
  } finally {
    other.release();
  }
});

test('a routing that rolls back leases nothing: its range goes with its messages', async () => {
  await db.pool.query('INSERT INTO items VALUES (30)');
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(ONE_STATEMENT_SQL, [
      100,
      ['reader'],
      [10],
      60_000,
      owner,
      [],
      [],
      [],
      null,
      '0',
      null,
      [],
    ]);
    assert.deepEqual(ids(rows[0].leased), [['reader', 30]]);
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }
  assert.equal((await db.pool.query('SELECT count(*)::int AS n FROM rowcast.cursor_leases')).rows[0].n, 0);
  const routed = await routeEvents(db.pool, 100, direct([['reader', 10]]));
  assert.deepEqual(ids(routed.leased), [['reader', 30]]);
});

test('the statement that records a function’s results leases the messages it published to the caller’s cursors', async () => {
  await db.pool.query(`SELECT rowcast.invoke('work', '{}')`);
  const client = await db.pool.connect();
  try {
    const { taken, items } = await claimInvocations(client, 'work', 1, { held: [], limit: 1 }, 60_000, owner);
    const inv = items[0]!;
    const message = (n: number) => ({
      id: randomUUID(),
      topic: 'items',
      body: JSON.stringify({ after: { id: n } }),
      contentType: 'application/json',
      subject: null,
      attributes: {},
      groupKey: null,
      dedupKey: null,
    });
    const completed = await completeInvocations(
      db.pool,
      [
        {
          id: inv.id,
          attempt: inv.attempt,
          lease: inv.lease,
          durationMs: 1,
          state: 'done',
          messages: [message(40), message(41)],
          trace: null,
        },
      ],
      direct([['reader', 10]]).deliveries,
    );
    assert.deepEqual([...completed.recorded], [inv.id]);
    assert.deepEqual(ids(completed.leased), [
      ['reader', 40],
      ['reader', 41],
    ]);
    // picky was not asked (no room): its messages are left to its claims.
    assert.equal(completed.cursorsCovered, false);
    await releaseSlots(client, 'work', taken);
  } finally {
    client.release();
  }
});

test('a cursor draining after a switch back to rows leaves its topic to the claims', async () => {
  await applyConfig(db.pool, config(false));
  assert.equal((await db.pool.query(`SELECT 1 FROM rowcast.cursors WHERE subscription = 'reader'`)).rowCount, 1);
  await db.pool.query('INSERT INTO items VALUES (50)');
  const routed = await routeEvents(db.pool, 100, direct([['picky', 10]]));
  assert.deepEqual(ids(routed.leased), [['picky', 50]]);
  // picky got everything; reader's cursor drains what was routed under it, which only claims do.
  assert.equal(routed.cursorsCovered, false);
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ONE_STATEMENT_SQL, routeEvents } from '../../src/routing/route-events.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query(
    'CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE jobs (id int PRIMARY KEY)',
  );
  await applyConfig(db.pool, {
    topics: { counters: { fifo: true }, items: {} },
    captures: {
      counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] },
      items: { table: 'items', topic: 'items', operations: ['INSERT'] },
      jobs: { table: 'jobs', function: 'work', operations: ['INSERT'] },
    },
    functions: { work: { handler: 'test/fixtures/handlers/publisher.ts' } },
    // Rows: these tests are about the delivery rows routing writes and leases (routing-cursor-lease.test.ts has
    // the cursors').
    subscriptions: {
      ordered: { topic: 'counters', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: false },
      first: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/first', cursor: false },
      second: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/second', cursor: false },
    },
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
    const { rows } = await first.query(ONE_STATEMENT_SQL, [1, [], [], 0, null, [], [], [], null, '0', null, []]); // routes version 0 and keeps its transaction open
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
  const { rows } = await db.pool.query(
    `SELECT m.body::jsonb -> 'after' ->> 'v' AS v FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id ORDER BY d.seq`,
  );
  assert.deepEqual(
    rows.map((r) => r.v),
    ['0', '1'],
  );
});

test('routing leases new deliveries to the caller as far as it has room, oldest first, never on FIFO topics', async () => {
  await db.pool.query('INSERT INTO items SELECT g FROM generate_series(1, 5) g');
  await db.pool.query('UPDATE counters SET v = 2 WHERE id = 1');
  const owner = 'test-process';
  const routed = await routeEvents(db.pool, 100, {
    deliveries: {
      wanted: new Map([
        ['first', 3],
        ['ordered', 5],
      ]),
      leaseMs: 60_000,
      owner,
      claimedAt: Date.now(),
    },
  });
  assert.equal(routed.events, 6);
  assert.deepEqual(
    routed.claimed.map((c) => [c.subscription, c.attempt, JSON.parse(c.message.body).after.id]),
    [
      ['first', 1, 1],
      ['first', 1, 2],
      ['first', 1, 3],
    ],
  );
  const { rows } = await db.pool.query(
    `SELECT subscription, state, attempts, lease_owner, count(*)::int AS n, bool_and(available_at > now() + interval '50 seconds') AS leased
       FROM rowcast.deliveries WHERE subscription <> 'ordered' OR seq > 2 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2`,
  );
  assert.deepEqual(rows, [
    { subscription: 'first', state: 'in_flight', attempts: 1, lease_owner: owner, n: 3, leased: true },
    { subscription: 'first', state: 'pending', attempts: 0, lease_owner: null, n: 2, leased: false },
    { subscription: 'ordered', state: 'pending', attempts: 0, lease_owner: null, n: 1, leased: false },
    { subscription: 'second', state: 'pending', attempts: 0, lease_owner: null, n: 5, leased: false },
  ]);
  // Nothing more to route: nothing leased.
  assert.deepEqual(
    (
      await routeEvents(db.pool, 100, {
        deliveries: { wanted: new Map([['second', 5]]), leaseMs: 60_000, owner, claimedAt: Date.now() },
      })
    ).claimed,
    [],
  );
});

test('routing leases new invocations to the caller for the slots it holds free', async () => {
  await db.pool.query('INSERT INTO jobs SELECT g FROM generate_series(1, 3) g');
  const owner = 'test-process';
  const routed = await routeEvents(db.pool, 100, {
    invocations: { wanted: new Map([['work', { n: 2, leaseMs: 60_000 }]]), owner, claimedAt: Date.now() },
  });
  assert.equal(routed.invocations, 3);
  assert.deepEqual(
    routed.claimedInvocations.map((i) => [i.group, i.attempt, JSON.parse(i.payload).after.id]),
    [
      ['work', 1, 1],
      ['work', 1, 2],
    ],
  );
  const { rows } = await db.pool.query(
    `SELECT state, attempts, lease_owner, started_at IS NOT NULL AS started, count(*)::int AS n, bool_and(available_at > now() + interval '50 seconds') AS leased
       FROM rowcast.invocations GROUP BY 1, 2, 3, 4 ORDER BY 1`,
  );
  assert.deepEqual(rows, [
    { state: 'in_flight', attempts: 1, lease_owner: owner, started: true, n: 2, leased: true },
    { state: 'pending', attempts: 0, lease_owner: null, started: false, n: 1, leased: false },
  ]);
});

// Routing's commit does not wait for its WAL flush, so a PostgreSQL crash can lose a routing whose webhook already
// went out. The event is durable (the writer's commit was flushed) and is routed again: with the same ids, which is
// what lets the subscriber tell the second copy for what it is.
test('routing commits without a flush, and a routing lost in a crash is redone with the same message and invocation ids', async () => {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(ONE_STATEMENT_SQL, [0, [], [], 0, null, [], [], [], null, '0', null, []]);
    assert.equal(
      (await client.query('SHOW synchronous_commit')).rows[0].synchronous_commit,
      'off',
      'routing turns the flush off for its own transaction',
    );
    await client.query('COMMIT');
    assert.equal((await client.query('SHOW synchronous_commit')).rows[0].synchronous_commit, 'on', 'and only for it');
  } finally {
    client.release();
  }

  while ((await routeEvents(db.pool, 100)).events);
  await db.pool.query('INSERT INTO items VALUES (100), (101); INSERT INTO jobs VALUES (100)');
  const tick = (await db.pool.query('SELECT prev, cur, hi, pos, done FROM rowcast.route_tick')).rows[0];
  const ids = async () =>
    (
      await db.pool.query<{ event: string; id: string }>(
        `SELECT e.id::text AS event, coalesce(m.id, i.id)::text AS id FROM rowcast.events e
           LEFT JOIN rowcast.messages m ON m.event_id = e.id LEFT JOIN rowcast.invocations i ON i.event_id = e.id
          WHERE e.after ->> 'id' IN ('100', '101') ORDER BY e.id`,
      )
    ).rows;
  await routeEvents(db.pool, 100);
  const first = await ids();
  assert.equal(first.length, 3);
  for (const r of first)
    assert.match(r.id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv8');
  assert.equal(new Set(first.map((r) => r.id)).size, 3);

  // What a crash before the flush leaves: the events, unrouted (the tick where it was), and nothing routing made of them.
  await db.pool.query(
    `WITH e AS (SELECT id FROM rowcast.events WHERE after ->> 'id' IN ('100', '101')),
          m AS (DELETE FROM rowcast.messages WHERE event_id IN (SELECT id FROM e)),
          i AS (DELETE FROM rowcast.invocations WHERE event_id IN (SELECT id FROM e))
     UPDATE rowcast.route_tick SET prev = $1, cur = $2, hi = $3, pos = $4, done = $5`,
    [tick.prev, tick.cur, tick.hi, tick.pos, tick.done],
  );
  assert.equal((await db.pool.query('SELECT count(*)::int AS n FROM rowcast.unrouted_events()')).rows[0].n, 3);
  assert.equal((await ids()).filter((r) => r.id).length, 0);
  assert.equal((await routeEvents(db.pool, 100)).events, 3);
  assert.deepEqual(await ids(), first);
});

test('routing leases nothing to a subscription whose older deliveries are due: new ones must not overtake them', async () => {
  const owner = 'test-process';
  const direct = () => ({
    deliveries: { wanted: new Map([['first', 5]]), leaseMs: 60_000, owner, claimedAt: Date.now() },
  });
  const due = async () =>
    (
      await db.pool.query(
        `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'first' AND state = 'pending' AND available_at <= now()`,
      )
    ).rows[0].n;
  assert.ok((await due()) > 0, 'earlier tests left deliveries of "first" pending');
  await db.pool.query('INSERT INTO items VALUES (200), (201)');
  const routed = await routeEvents(db.pool, 100, direct());
  assert.equal(routed.events, 2);
  assert.deepEqual(routed.claimed, [], 'the due ones are claimed first, oldest first');
  // Once they are done (or waiting for a retry later on), new deliveries are leased again.
  await db.pool.query(
    `UPDATE rowcast.deliveries SET state = 'done' WHERE subscription = 'first' AND state = 'pending' AND message_id IN (SELECT id FROM rowcast.messages WHERE body::jsonb -> 'after' ->> 'id' <> '201')`,
  );
  await db.pool.query(
    `UPDATE rowcast.deliveries SET available_at = now() + interval '1 minute' WHERE subscription = 'first' AND state = 'pending'`,
  );
  await db.pool.query('INSERT INTO items VALUES (202)');
  const next = await routeEvents(db.pool, 100, direct());
  assert.deepEqual(
    next.claimed.map((c) => [c.subscription, JSON.parse(c.message.body).after.id]),
    [['first', 202]],
  );
});

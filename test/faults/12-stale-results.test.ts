import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  claimInvocations,
  completeInvocations,
  type InvocationResult,
  releaseInvocations,
} from '../../src/functions/invocation-store.js';
import { ident } from '../../src/store/sql.js';
import { claimDeliveries, completeDeliveries, releaseDeliveries } from '../../src/delivery/delivery-store.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';
import { reportResult } from '../support/fault-harness.js';

/*
 * A stale result must not land on someone else's lease. Claims (and routing's direct leases) commit without
 * waiting for their WAL flush, so a PostgreSQL crash can lose one: the row is then as it was before, and the next
 * claim hands out the same (id, attempt) to another owner. The first owner, still holding its buffered result,
 * writes it once the database is back. Each scenario below plays that crash on the row (crashLosesLease), then has
 * the second owner claim it and the first owner's result land: it must be refused, and the row stay the second's.
 */

const LEASE_MS = 60_000;
const ENDPOINT = 'http://127.0.0.1:9/';
let db: TestDatabase;
const refused: Record<string, number> = {};

before(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY);
    CREATE TABLE orders (id int PRIMARY KEY);
    CREATE TABLE jobs (id int PRIMARY KEY);
    CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)`);
  await applyConfig(db.pool, {
    topics: { items: {}, orders: {}, letters: {}, out: {}, counters: { fifo: true } },
    captures: {
      items: { table: 'items', topic: 'items', operations: ['INSERT'] },
      orders: { table: 'orders', topic: 'orders', operations: ['INSERT'] },
      jobs: { table: 'jobs', function: 'work', operations: ['INSERT'] },
      counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] },
    },
    // Rows: the leases these scenarios lose and hand out again are delivery rows' (cursors' ranges: fault 25).
    subscriptions: {
      items: { topic: 'items', protocol: 'http', endpoint: ENDPOINT, deadLetter: { topic: 'letters' }, cursor: false },
      orders: { topic: 'orders', protocol: 'http', endpoint: ENDPOINT, cursor: false },
      letters: { topic: 'letters', protocol: 'http', endpoint: ENDPOINT, cursor: false },
      out: { topic: 'out', protocol: 'http', endpoint: ENDPOINT, cursor: false },
      counters: { topic: 'counters', protocol: 'http', endpoint: ENDPOINT, cursor: false },
    },
    functions: { work: { handler: 'test/fixtures/handlers/publisher.ts', concurrency: 2 } },
  });
});

after(() => db?.drop());

/**
 * Claims invocations of `work` as a process does, on a connection that takes the function's slots (session
 * advisory locks); the connection is then closed, as the crash closes every session, so the slots are free again.
 */
async function claimWork(owner: string) {
  const client = await db.pool.connect();
  try {
    return (await claimInvocations(client, 'work', 10, { held: [], limit: 2 }, LEASE_MS, owner)).items;
  } finally {
    client.release(true);
  }
}

/**
 * What a PostgreSQL crash leaves of a lease whose asynchronous commit never reached disk: the row as before the
 * claim (pending, the attempt not counted), or for a direct lease, as the routing done again after the crash
 * creates it (pending, attempt 0, and the same id: the message's is derived from the event, and a lost commit
 * loses the sequence's advance with it).
 */
async function crashLosesLease(table: 'deliveries' | 'invocations', id: string): Promise<void> {
  const res = await db.pool.query(
    `UPDATE rowcast.${ident(table)} SET state = 'pending', attempts = attempts - 1, available_at = now(), lease_owner = NULL, lease = NULL
      WHERE id = $1 AND state = 'in_flight'`,
    [id],
  );
  assert.equal(res.rowCount, 1, `${table} ${id} was in flight`);
}

async function row(table: 'deliveries' | 'invocations', id: string) {
  const { rows } = await db.pool.query<{
    state: string;
    attempts: number;
    lease_owner: string | null;
    lease: string | null;
  }>(`SELECT state, attempts, lease_owner, lease::text FROM rowcast.${ident(table)} WHERE id = $1`, [id]);
  return rows[0]!;
}

async function messagesOn(topic: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM rowcast.messages WHERE topic = $1',
    [topic],
  );
  return rows[0]!.n;
}

const count = (scenario: string, n = 1) => (refused[scenario] = (refused[scenario] ?? 0) + n);

test("a delivery claimed again after a crash: the first owner's results and release are refused, dead letter included", async () => {
  await db.pool.query('INSERT INTO items VALUES (1)');
  await routeEvents(db.pool, 500);
  const [first] = await claimDeliveries(db.pool, new Map([['items', 10]]), LEASE_MS, 'first');
  assert.ok(first);
  await crashLosesLease('deliveries', first.deliveryId);
  const [second] = await claimDeliveries(db.pool, new Map([['items', 10]]), LEASE_MS, 'second');
  assert.ok(second);
  assert.deepEqual(
    [second.deliveryId, second.attempt],
    [first.deliveryId, first.attempt],
    'the crash handed the same (id, attempt) out again',
  );

  // The first owner's buffered results: delivered, or dead with a dead letter; then its release at shutdown.
  const stale = { deliveryId: first.deliveryId, attempt: first.attempt, lease: first.lease, durationMs: 1 };
  assert.equal(
    await completeDeliveries(db.pool, [{ ...stale, state: 'done', status: 200 }]),
    0,
    'a stale "done" is refused',
  );
  const deadLetter = {
    id: randomUUID(),
    topic: 'letters',
    subject: null,
    body: '{}',
    contentType: 'application/json',
    attributes: {},
    groupKey: null,
  };
  assert.equal(
    await completeDeliveries(db.pool, [{ ...stale, state: 'dead', error: 'gave up', deadLetter }]),
    0,
    'a stale "dead" is refused',
  );
  await releaseDeliveries(db.pool, [stale], false);
  count('delivery', 3);

  assert.deepEqual(await row('deliveries', first.deliveryId), {
    state: 'in_flight',
    attempts: 1,
    lease_owner: 'second',
    lease: second.lease,
  });
  assert.equal(await messagesOn('letters'), 0, 'no dead letter for a refused result');
  assert.equal(
    await completeDeliveries(db.pool, [
      { deliveryId: second.deliveryId, attempt: second.attempt, lease: second.lease, state: 'done', status: 200 },
    ]),
    1,
    "the owner's result is recorded",
  );
  assert.equal((await row('deliveries', first.deliveryId)).state, 'done');
});

test("direct leases made by routing, lost in a crash and claimed by another process: the first owner's results and releases are refused", async () => {
  await db.pool.query('INSERT INTO orders VALUES (1); INSERT INTO jobs VALUES (1)');
  const claimedAt = Date.now();
  const routed = await routeEvents(db.pool, 500, {
    deliveries: { wanted: new Map([['orders', 1]]), leaseMs: LEASE_MS, owner: 'first', claimedAt },
    invocations: { wanted: new Map([['work', { n: 1, leaseMs: LEASE_MS }]]), owner: 'first', claimedAt },
  });
  const [delivery] = routed.claimed;
  const [invocation] = routed.claimedInvocations;
  assert.ok(delivery && invocation, 'routing leased a delivery and an invocation directly');
  await crashLosesLease('deliveries', delivery.deliveryId);
  await crashLosesLease('invocations', invocation.id);

  const [second] = await claimDeliveries(db.pool, new Map([['orders', 10]]), LEASE_MS, 'second');
  const [secondInvocation] = await claimWork('second');
  assert.deepEqual([second?.deliveryId, second?.attempt], [delivery.deliveryId, delivery.attempt]);
  assert.deepEqual([secondInvocation?.id, secondInvocation?.attempt], [invocation.id, invocation.attempt]);

  const staleDelivery = { deliveryId: delivery.deliveryId, attempt: delivery.attempt, lease: delivery.lease };
  assert.equal(await completeDeliveries(db.pool, [{ ...staleDelivery, state: 'done', status: 200 }]), 0);
  await releaseDeliveries(db.pool, [staleDelivery], true);
  const published = {
    id: randomUUID(),
    topic: 'out',
    subject: null,
    body: '{}',
    contentType: 'application/json',
    attributes: {},
    groupKey: null,
    dedupKey: null,
  };
  const staleInvocation: InvocationResult = {
    id: invocation.id,
    attempt: invocation.attempt,
    lease: invocation.lease,
    durationMs: 1,
    state: 'done',
    result: null,
    messages: [published],
    trace: null,
  };
  assert.equal(
    (await completeInvocations(db.pool, [staleInvocation])).recorded.size,
    0,
    'a stale invocation result is refused',
  );
  await releaseInvocations(db.pool, [staleInvocation], true);
  count('direct lease', 4);

  assert.deepEqual(await row('deliveries', delivery.deliveryId), {
    state: 'in_flight',
    attempts: 1,
    lease_owner: 'second',
    lease: second!.lease,
  });
  assert.deepEqual(await row('invocations', invocation.id), {
    state: 'in_flight',
    attempts: 1,
    lease_owner: 'second',
    lease: secondInvocation!.lease,
  });
  assert.equal(await messagesOn('out'), 0, 'a refused invocation result publishes nothing');
  const mine = { ...staleInvocation, lease: secondInvocation!.lease, messages: [{ ...published, id: randomUUID() }] };
  assert.deepEqual(
    [...(await completeInvocations(db.pool, [mine])).recorded],
    [invocation.id],
    "the owner's result is recorded",
  );
  assert.equal(await messagesOn('out'), 1, 'and publishes once');
});

test("an invocation claimed again after a crash: the first owner's failure and release are refused", async () => {
  await db.pool.query('INSERT INTO jobs VALUES (2)');
  await routeEvents(db.pool, 500);
  const [first] = await claimWork('first');
  assert.ok(first);
  await crashLosesLease('invocations', first.id);
  const [second] = await claimWork('second');
  assert.deepEqual([second?.id, second?.attempt], [first.id, first.attempt]);

  const stale: InvocationResult = {
    id: first.id,
    attempt: first.attempt,
    lease: first.lease,
    durationMs: 1,
    state: 'pending',
    availableAt: new Date(),
    error: 'Error: boom',
    messages: [],
    trace: null,
  };
  assert.equal((await completeInvocations(db.pool, [stale])).recorded.size, 0, 'a stale retry is refused');
  assert.equal(
    (await completeInvocations(db.pool, [{ ...stale, state: 'failed', availableAt: undefined }])).recorded.size,
    0,
    'a stale failure is refused',
  );
  await releaseInvocations(db.pool, [stale], false);
  count('invocation', 3);
  assert.deepEqual(await row('invocations', first.id), {
    state: 'in_flight',
    attempts: 1,
    lease_owner: 'second',
    lease: second!.lease,
  });
});

test("FIFO: a stale result for a group's head does not let the next delivery of the group go while the head is in flight", async () => {
  await db.pool.query('INSERT INTO counters VALUES (1, 0)');
  await db.pool.query('UPDATE counters SET v = 1 WHERE id = 1');
  await routeEvents(db.pool, 500);
  const claimAll = (owner: string) => claimDeliveries(db.pool, new Map([['counters', 10]]), LEASE_MS, owner);
  const [head, ...rest] = await claimAll('first');
  assert.ok(head);
  assert.equal(rest.length, 0, "only the group's head can be claimed");
  await crashLosesLease('deliveries', head.deliveryId);
  const [second] = await claimAll('second');
  assert.deepEqual([second?.deliveryId, second?.attempt], [head.deliveryId, head.attempt]);

  assert.equal(
    await completeDeliveries(db.pool, [
      { deliveryId: head.deliveryId, attempt: head.attempt, lease: head.lease, state: 'done', status: 200 },
    ]),
    0,
  );
  count('fifo');
  assert.deepEqual(await claimAll('third'), [], 'the next version waits while the head is in flight');
  assert.equal(
    await completeDeliveries(db.pool, [
      { deliveryId: second!.deliveryId, attempt: second!.attempt, lease: second!.lease, state: 'done', status: 200 },
    ]),
    1,
  );
  const next = await claimAll('third');
  assert.equal(next.length, 1, 'once the head is done, the next version goes');
  assert.equal(JSON.parse(next[0]!.message.body).after.v, 1);
});

test('a lease without a token (in flight at the upgrade) takes no result of this version, and is claimed again once it expires', async () => {
  await db.pool.query('INSERT INTO items VALUES (2)');
  await routeEvents(db.pool, 500);
  const [old] = await claimDeliveries(db.pool, new Map([['items', 10]]), LEASE_MS, 'before the upgrade');
  assert.ok(old);
  // As a process of the previous version leaves it: no token, and its lease has run out.
  await db.pool.query(
    `UPDATE rowcast.deliveries SET lease = NULL, available_at = now() - interval '1 second' WHERE id = $1`,
    [old.deliveryId],
  );
  assert.equal(
    await completeDeliveries(db.pool, [
      { deliveryId: old.deliveryId, attempt: old.attempt, lease: old.lease, state: 'done' },
    ]),
    0,
  );
  const [again] = await claimDeliveries(db.pool, new Map([['items', 10]]), LEASE_MS, 'after the upgrade');
  assert.equal(again?.deliveryId, old.deliveryId);
  assert.ok(again.lease && again.lease !== old.lease, 'the new claim has a token of its own');
  assert.equal(
    await completeDeliveries(db.pool, [
      { deliveryId: again.deliveryId, attempt: again.attempt, lease: again.lease, state: 'done' },
    ]),
    1,
  );
  reportResult('stale-results', { staleWritesRefused: refused });
});

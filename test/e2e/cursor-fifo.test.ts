import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RowcastConfigInput, RowcastRuntime } from '../../src/index.js';
import { redrive } from '../../src/admin/actions/delivery-actions.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';
import { assertDeliveries } from '../support/checker.js';
import { patient } from '../support/patience.js';

/**
 * Cursors on FIFO topics (migration 032): per group order under concurrency, a failing head that holds back only its
 * own group, a dead head that keeps holding it (onDeadMessage: block-group) until redriven, and two processes sharing
 * one FIFO cursor. A captured table's group is its row, so each row's updates (v = 0, 1, 2, …) are one group's order.
 */
const TEST = { timeout: patient(120_000) };
const WAIT = patient(60_000);

let db: TestDatabase;
let rowcast: RowcastRuntime;
const receivers = {} as Record<'ordered' | 'poisoned' | 'blocking' | 'shared', WebhookReceiver>;
/** Rows of `poisoned` and `blocking` whose first message fails until the test fixes them. */
const failing = new Set<string>();

const keyOf = (r: ReceivedRequest) => r.json?.body?.key?.id as number | undefined;
const valueOf = (r: ReceivedRequest) => r.json?.body?.after?.v as number;
/** What one group accepted, in order of arrival. */
const accepted = (receiver: WebhookReceiver, id: number) =>
  receiver.requests.filter((r) => r.status === 200 && keyOf(r) === id).map(valueOf);

function config(shared = { cursor: true }): RowcastConfigInput {
  const fast = { minDelay: '10ms', maxDelay: '40ms' };
  return {
    topics: { counters: { fifo: true }, jobs: { fifo: true, onDeadMessage: 'block-group' } },
    captures: {
      counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] },
      jobs: { table: 'jobs', topic: 'jobs', operations: ['INSERT', 'UPDATE'] },
    },
    subscriptions: {
      ordered: {
        topic: 'counters',
        protocol: 'http',
        endpoint: receivers.ordered.url,
        cursor: true,
        maxConcurrency: 16,
        deliveryPolicy: { maxAttempts: 50, ...fast },
      },
      poisoned: {
        topic: 'counters',
        protocol: 'http',
        endpoint: receivers.poisoned.url,
        cursor: true,
        maxConcurrency: 8,
        // Its failing head goes dead only after 100 attempts at least 100 ms apart: well after the test fixes it.
        deliveryPolicy: { maxAttempts: 100, minDelay: '100ms', maxDelay: '200ms' },
      },
      blocking: {
        topic: 'jobs',
        protocol: 'http',
        endpoint: receivers.blocking.url,
        cursor: true,
        deliveryPolicy: { maxAttempts: 1 },
      },
      shared: {
        topic: 'jobs',
        protocol: 'http',
        endpoint: receivers.shared.url,
        maxConcurrency: 8,
        ...shared,
      },
    },
  };
}

before(async () => {
  db = await createTestDatabase();
  for (const name of ['ordered', 'poisoned', 'blocking', 'shared'] as const)
    receivers[name] = await WebhookReceiver.start();
  // About one attempt in four fails at first, answers take a few milliseconds: groups overlap and retry.
  receivers.ordered.reply = () =>
    Math.random() < 0.25 ? { status: 503 } : { status: 200, delayMs: Math.floor(Math.random() * 4) };
  receivers.poisoned.reply = (r) =>
    failing.has(`poisoned:${keyOf(r)}`) && valueOf(r) === 0 ? { status: 500 } : { status: 200 };
  receivers.blocking.reply = (r) =>
    failing.has(`blocking:${keyOf(r)}`) && valueOf(r) === 0 ? { status: 500 } : { status: 200 };
  receivers.shared.reply = () => ({ status: 200, delayMs: Math.floor(Math.random() * 3) });
  await db.pool.query(
    `CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE jobs (id int PRIMARY KEY, v int NOT NULL)`,
  );
  await applyConfig(db.pool, config());
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  for (const r of Object.values(receivers)) await r?.close();
  await db?.drop();
});

/** Updates each of the rows `updates` times from four connections, so that commits of different rows interleave. */
async function updateConcurrently(ids: number[], updates: number, table = 'counters'): Promise<void> {
  await Promise.all(
    Array.from({ length: 4 }, async (_w, w) => {
      for (let u = 0; u < updates; u++)
        for (const id of ids.filter((_id, i) => i % 4 === w))
          await db.pool.query(`UPDATE ${table} SET v = v + 1 WHERE id = $1`, [id]);
    }),
  );
}

/** Every (row, value) pair, as the checker's keys. */
const pairs = (ids: number[], values: number) =>
  ids.flatMap((id) => Array.from({ length: values }, (_x, v) => `${id}:${v}`));

/**
 * Each group's positions strictly in order: no attempt at a row's next value before its previous one was answered
 * 2xx (support/checker.ts), nothing missing, one webhook-id per message.
 */
/** How many of the blocking subscription's delivery rows are in this state. */
async function blockingIn(state: 'dead' | 'pending'): Promise<number> {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'blocking' AND state = $1`,
    [state],
  );
  return rows[0].n;
}

function assertOrdered(receiver: WebhookReceiver, ids: number[], values: number): void {
  const wanted = new Set(ids);
  assertDeliveries({
    committed: pairs(ids, values),
    requests: receiver.requests.filter((r) => wanted.has(keyOf(r)!)),
    keyOf: (r) => `${keyOf(r)}:${valueOf(r)}`,
    order: { groupOf: (r) => String(keyOf(r)), seqOf: valueOf },
  });
}

test('FIFO cursor: interleaved updates of many rows, with failures, arrive in commit order per row', TEST, async () => {
  const ids = Array.from({ length: 12 }, (_x, i) => i + 1);
  const UPDATES = 12;
  await db.pool.query(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, 12) g`);
  await updateConcurrently(ids, UPDATES);
  await eventually(
    () => ids.every((id) => new Set(accepted(receivers.ordered, id)).size === UPDATES + 1),
    'every update delivered',
    WAIT,
  );
  assertOrdered(receivers.ordered, ids, UPDATES + 1);
  // The cursor passed every message and holds no range.
  await eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT rowcast.cursor_position('ordered') >= max(seq) AS passed,
              (SELECT count(*) FROM rowcast.cursor_leases WHERE subscription = 'ordered') AS open
         FROM rowcast.messages WHERE topic = 'counters'`,
    );
    return rows[0].passed && Number(rows[0].open) === 0;
  }, 'the cursor passed every message and holds no range');
});

test(
  'FIFO cursor: a failing head holds back only its own row, which resumes in order once it succeeds',
  TEST,
  async () => {
    failing.add('poisoned:101');
    await db.pool.query(`INSERT INTO counters SELECT g, 0 FROM generate_series(101, 106) g`);
    await updateConcurrently([101, 102, 103, 104, 105, 106], 3);
    const healthy = [102, 103, 104, 105, 106];
    await eventually(
      () => healthy.every((id) => accepted(receivers.poisoned, id).length >= 4),
      'the other rows delivered while row 101 fails',
      WAIT,
    );
    assertOrdered(receivers.poisoned, healthy, 4);
    // Row 101's head failed at least twice (its retries are a row's), and nothing after it was sent.
    await eventually(() => receivers.poisoned.requests.filter((r) => keyOf(r) === 101).length >= 2, 'row 101 retried');
    assert.deepEqual(
      [...new Set(receivers.poisoned.requests.filter((r) => keyOf(r) === 101).map(valueOf))],
      [0],
      'only the head of row 101 was attempted',
    );
    failing.delete('poisoned:101');
    await eventually(() => accepted(receivers.poisoned, 101).length >= 4, 'row 101 after its head succeeded', WAIT);
    assertOrdered(receivers.poisoned, [101, ...healthy], 4);
    assert.deepEqual(accepted(receivers.poisoned, 101), [0, 1, 2, 3]);
  },
);

test(
  "FIFO cursor: a dead head keeps holding its row (onDeadMessage: 'block-group'); redrive releases it in order",
  TEST,
  async () => {
    failing.add('blocking:1');
    failing.add('blocking:2');
    await db.pool.query(`INSERT INTO jobs VALUES (1, 0), (2, 0)`);
    await db.pool.query(`UPDATE jobs SET v = v + 1 WHERE id IN (1, 2)`);
    await db.pool.query(`UPDATE jobs SET v = v + 1 WHERE id IN (1, 2)`);
    await eventually(async () => (await blockingIn('dead')) === 2, 'both heads dead', WAIT);
    // A third row goes through: the cursor has read past the held rows.
    await db.pool.query(`INSERT INTO jobs VALUES (3, 0)`);
    await eventually(() => accepted(receivers.blocking, 3).length === 1, 'the third row delivered', WAIT);
    // Their later messages wait as pending rows behind the dead heads, never attempted.
    const waiting = await eventually(async () => {
      const { rows } = await db.pool.query<{ state: string; attempts: number }>(
        `SELECT d.state, d.attempts FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
        WHERE d.subscription = 'blocking' AND d.state <> 'dead' AND m.body::jsonb -> 'key' ->> 'id' IN ('1', '2')`,
      );
      return rows.length === 4 && rows;
    }, 'the later messages of rows 1 and 2 as rows');
    assert.deepEqual(
      waiting,
      Array.from({ length: 4 }, () => ({ state: 'pending', attempts: 0 })),
      'the later messages never attempted',
    );
    assert.deepEqual(accepted(receivers.blocking, 1), [], 'row 1 waits behind its dead message');
    assert.deepEqual(accepted(receivers.blocking, 2), [], 'row 2 as well');
    // Another update of a held row, read by the cursor while its group is held, joins the queue behind it.
    await db.pool.query(`UPDATE jobs SET v = v + 1 WHERE id = 1`);
    await eventually(async () => (await blockingIn('pending')) === 5, 'the new message held as a row too', WAIT);
    failing.clear();
    assert.equal(await redrive(db.pool, { subscription: 'blocking' }), 2);
    await eventually(
      () => accepted(receivers.blocking, 1).length === 4 && accepted(receivers.blocking, 2).length === 3,
      'both rows, after redrive',
      WAIT,
    );
    assert.deepEqual(accepted(receivers.blocking, 1), [0, 1, 2, 3]);
    assert.deepEqual(accepted(receivers.blocking, 2), [0, 1, 2]);
  },
);

test('FIFO cursor: two processes share it without reordering a row, and one stops mid-way', TEST, async () => {
  const ids = Array.from({ length: 10 }, (_x, i) => 1000 + i);
  const UPDATES = 20;
  await db.pool.query(`INSERT INTO jobs SELECT g, 0 FROM generate_series(1000, 1009) g`);
  const second = await startTestRowcast(db.url);
  try {
    await updateConcurrently(ids.slice(0, 10), UPDATES / 2, 'jobs');
  } finally {
    await second.stop();
  }
  await updateConcurrently(ids, UPDATES / 2, 'jobs');
  await eventually(
    () => ids.every((id) => new Set(accepted(receivers.shared, id)).size === UPDATES + 1),
    'every update delivered through the shared cursor',
    WAIT,
  );
  assertOrdered(receivers.shared, ids, UPDATES + 1);
  // Nothing failed, so the only rows are for work the stopped process handed back.
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'shared' AND last_error IS NOT NULL`,
  );
  assert.equal(rows[0]!.n, 0);
});

test('FIFO cursor: switched to rows and back while rows are written, each row stays in order', TEST, async () => {
  const ids = Array.from({ length: 8 }, (_x, i) => 2000 + i);
  await db.pool.query(`INSERT INTO jobs SELECT g, 0 FROM generate_series(2000, 2007) g`);
  let writing = true;
  let rounds = 0;
  const writer = (async () => {
    while (writing || rounds < 6) {
      await updateConcurrently(ids, 1, 'jobs');
      rounds++;
    }
  })();
  try {
    // To rows while the cursor still has ranges to deliver: rows of later messages wait until it has drained.
    await eventually(() => rounds >= 2, 'updates under the cursor');
    await applyConfig(db.pool, config({ cursor: false }));
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.cursors WHERE subscription = 'shared'`)).rows[0]
          .n === 0,
      'the switched-off cursor drained and went',
      WAIT,
    );
    // And back to a cursor: it starts at the log's end, behind the rows' groups.
    await applyConfig(db.pool, config());
  } finally {
    writing = false;
    await writer;
  }
  await eventually(
    () => ids.every((id) => new Set(accepted(receivers.shared, id)).size === rounds + 1),
    'every update delivered',
    WAIT,
  );
  assertOrdered(receivers.shared, ids, rounds + 1);
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { completeLogRanges, leaseLogRanges } from '../../src/delivery/cursor-store.js';
import { getDelivery } from '../../src/index.js';
import { applyRetention } from '../../src/store/retention.js';
import { INITIAL_HORIZON, type LeasedMessage, type LogHorizon } from '../../src/store/log-leases.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The cursor's own guarantees, at the store (rowcast.lease_log_ranges): it never passes a message that a running
 * transaction may still commit below the horizon, a range whose lease expired is taken over whole, and the old
 * owner's completion is refused. No rowcast runs: the statements are called as the delivery worker calls them.
 */
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, {
    topics: { log: {} },
    subscriptions: { reader: { topic: 'log', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: true } },
  });
});

after(() => db?.drop());

async function publish(client: pg.PoolClient | TestDatabase['pool'], body: string): Promise<string> {
  const { rows } = await client.query(
    `INSERT INTO rowcast.messages (topic, body) VALUES ('log', $1) RETURNING seq::text`,
    [body],
  );
  return rows[0].seq;
}

let horizon: LogHorizon = INITIAL_HORIZON;
async function lease(n = 100, leaseMs = 60_000, owner = 'test'): Promise<LeasedMessage[]> {
  const leased = await leaseLogRanges(db.pool, new Map([['reader', n]]), leaseMs, owner, horizon);
  horizon = leased.horizon;
  return leased.messages;
}

const bodies = (messages: LeasedMessage[]) => messages.map((m) => m.delivery.message.body);

/** Completes the ranges of these messages, all delivered. */
async function finish(messages: LeasedMessage[]): Promise<void> {
  const ranges = new Map(messages.map((m) => [m.range.lease, m.range]));
  await completeLogRanges(
    db.pool,
    [...ranges.values()].map((range) => ({ range, failed: [], handedBack: [] })),
  );
}

describe('a cursor over the message log', () => {
  test('starts over at the end of a topic it is moved to, dropping its leases', async () => {
    await publish(db.pool, 'before the move');
    let leased: LeasedMessage[] = [];
    for (let i = 0; i < 3 && !leased.length; i++) leased = await lease();
    assert.equal(leased.length, 1);
    await applyConfig(db.pool, {
      topics: { log: {}, elsewhere: {} },
      subscriptions: {
        reader: { topic: 'elsewhere', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: true },
      },
    });
    const { rows } = await db.pool.query(
      `SELECT (SELECT count(*)::int FROM rowcast.cursor_leases) AS leases,
              rowcast.cursor_position('reader') = (SELECT max(seq) FROM rowcast.messages) AS at_end`,
    );
    assert.deepEqual(rows[0], { leases: 0, at_end: true });
    const stale = await completeLogRanges(db.pool, [{ range: leased[0]!.range, failed: [], handedBack: [] }]);
    assert.equal(stale.completed, 0, 'a lease of the old topic completes nothing');
    await applyConfig(db.pool, {
      topics: { log: {} },
      subscriptions: { reader: { topic: 'log', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: true } },
    });
  });

  test('waits for a lower seq that commits after a higher one', async () => {
    const slow = await db.pool.connect();
    try {
      await slow.query('BEGIN');
      const low = await publish(slow, 'low');
      const high = await publish(db.pool, 'high');
      assert.ok(BigInt(low) < BigInt(high));
      // Twice: the first lease takes the barrier, the second checks it; the writer of `low` still runs.
      assert.deepEqual(bodies(await lease()), []);
      assert.deepEqual(bodies(await lease()), [], 'nothing past a seq whose transaction is still open');
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    const after = [...(await lease()), ...(await lease())];
    assert.deepEqual(bodies(after), ['low', 'high'], 'both, in seq order, once the writer ended');
    await finish(after);
  });

  test('looks for writers only when a seq was drawn past its settled horizon (migration 048)', async () => {
    await publish(db.pool, 'settled');
    const first = [...(await lease()), ...(await lease())];
    assert.deepEqual(bodies(first), ['settled']);
    await finish(first);
    const open = await db.pool.connect();
    try {
      // A transaction holding the log's lock that drew no seq.
      await open.query('BEGIN');
      await open.query('UPDATE rowcast.messages SET body = body WHERE false');
      assert.deepEqual(await lease(), []);
      assert.deepEqual(horizon.barrierWriters, [], 'nothing drawn past the horizon: no writer to wait for');
      await publish(db.pool, 'next');
      assert.deepEqual(await lease(), [], 'a seq drawn past it: the open writer might hold a lower one');
      assert.equal(horizon.barrierWriters.length, 1, 'the open writer is the barrier');
      await open.query('COMMIT');
    } finally {
      open.release();
    }
    const next = [...(await lease()), ...(await lease())];
    assert.deepEqual(bodies(next), ['next'], 'the barrier settles once its writer ended');
    await finish(next);
  });

  test('never hands out a rolled-back seq and skips its gap', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await publish(client, 'rolled back');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await publish(db.pool, 'after the gap');
    const got = [...(await lease()), ...(await lease())];
    assert.deepEqual(bodies(got), ['after the gap']);
    await finish(got);
  });

  test('takes over an expired range whole, and refuses the old owner its completion', async () => {
    for (let i = 0; i < 5; i++) await publish(db.pool, `batch ${i}`);
    let first: LeasedMessage[] = [];
    for (let i = 0; i < 3 && !first.length; i++) first = await lease(3, 1, 'first');
    assert.equal(first.length, 3, 'a range of at most the number asked for');
    await new Promise((r) => setTimeout(r, 20));
    const second = await lease(3, 60_000, 'second');
    assert.deepEqual(bodies(second), bodies(first), 'the expired range, whole, to the next claimant');
    assert.notEqual(second[0]!.range.lease, first[0]!.range.lease, 'under a new lease token');
    assert.equal(second[0]!.range.attempt, 2);
    const stale = await completeLogRanges(db.pool, [{ range: first[0]!.range, failed: [], handedBack: [] }]);
    assert.equal(stale.completed, 0, 'the old lease completes nothing');
    const rest = await lease(10, 60_000, 'second');
    assert.deepEqual(bodies(rest), ['batch 3', 'batch 4'], 'the next range starts after the taken-over one');
    const done = await completeLogRanges(db.pool, [
      { range: second[0]!.range, failed: [], handedBack: [] },
      { range: rest[0]!.range, failed: [], handedBack: [] },
    ]);
    assert.equal(done.completed, 2);
    const { rows } = await db.pool.query(
      `SELECT rowcast.cursor_position('reader') = (SELECT max(seq) FROM rowcast.messages) AS passed,
              (SELECT count(*)::int FROM rowcast.deliveries) AS rows`,
    );
    assert.deepEqual(rows[0], { passed: true, rows: 0 });
    // What the delivery detail says of each: sent at the range's attempt, the taken-over ones twice (migration 040).
    const attempts = async (messages: LeasedMessage[]) =>
      Promise.all(messages.map(async (m) => (await getDelivery(db.pool, m.delivery.deliveryId)).attempts));
    assert.deepEqual(await attempts(second), [2, 2, 2]);
    assert.deepEqual(await attempts(rest), [1, 1]);
    // One record, of the taken-over range, and retention forgets it with the range's last message.
    const retakes = async () =>
      (await db.pool.query('SELECT from_seq::text, attempts FROM rowcast.cursor_retakes')).rows;
    assert.deepEqual(await retakes(), [{ from_seq: second[0]!.range.fromSeq, attempts: 2 }]);
    await applyRetention(db.pool, 0, 0);
    assert.deepEqual(await retakes(), []);
  });

  test('turns work handed back unsent into pending rows, its attempt not counted', async () => {
    await publish(db.pool, 'handed back');
    let leased: LeasedMessage[] = [];
    for (let i = 0; i < 3 && !leased.length; i++) leased = await lease();
    assert.equal(leased.length, 1);
    const [m] = leased;
    await completeLogRanges(db.pool, [
      { range: m!.range, failed: [], handedBack: [{ messageId: m!.delivery.message.id, started: false }] },
    ]);
    const { rows } = await db.pool.query(`SELECT state, attempts FROM rowcast.deliveries WHERE message_id = $1`, [
      m!.delivery.message.id,
    ]);
    assert.deepEqual(rows, [{ state: 'pending', attempts: 0 }]);
  });
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * Results are written in batches after the sends (queue/result-batcher.ts). When PostgreSQL writes them more slowly
 * than the endpoints answer, the worker must stop claiming rather than pile results up in memory (a rows-path drain
 * of a million events grew to 560 MB RSS) with their leases running out. Here the results statement is made to wait
 * on an advisory lock the test holds (a trigger on the delivery rows' UPDATE to 'done'): the worker sends up to its
 * bound and stops; once the lock is let go, everything is recorded and delivered.
 */
const BACKLOG = 5000;
/** ClaimLoop's MAX_UNRECORDED, plus what was claimed before it was reached: a claim (maxClaim 500) and the slots. */
const MOST_SENT_WHILE_HELD = 1000 + 500 + 2 * 16;

/** Waits until `count` is above 0 and has stayed put for 2 s; returns it. */
async function steady(count: () => number | Promise<number>, what: string): Promise<number> {
  let last = -1;
  let since = Date.now();
  return eventually(
    async () => {
      const now = await count();
      if (now !== last) [last, since] = [now, Date.now()];
      return now > 0 && Date.now() - since >= 2000 && now;
    },
    what,
    60_000,
  );
}

/** Makes the statement that records results wait while the test holds advisory lock 4242. */
const holdResultsOn = (table: string, done: string) => `
    CREATE OR REPLACE FUNCTION public.hold_results() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_lock_shared(4242);
      PERFORM pg_advisory_unlock_shared(4242);
      RETURN NEW;
    END $$;
    CREATE TRIGGER hold_results BEFORE UPDATE ON ${table}
      FOR EACH ROW WHEN (NEW.state = '${done}' AND OLD.state <> '${done}') EXECUTE FUNCTION public.hold_results();`;

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime | undefined;
let holder: pg.PoolClient | undefined;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start({ keep: () => undefined });
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items' } },
    // Rows: the results held here are the delivery rows' (a cursor records a whole range with one DELETE).
    subscriptions: {
      hook: { topic: 'items', protocol: 'http', endpoint: receiver.url, maxConcurrency: 16, cursor: false },
    },
  });
  await db.pool.query(holdResultsOn('rowcast.deliveries', 'done'));
});

after(async () => {
  holder?.release();
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

test('a worker whose results are not being written stops claiming at its bound, and goes on once they are', async () => {
  holder = await db.pool.connect();
  await holder.query('SELECT pg_advisory_lock(4242)');
  await db.pool.query(`INSERT INTO items SELECT generate_series(1, ${BACKLOG})`);
  rowcast = await startTestRowcast(db.url, { concurrency: 16 });

  // Sent until the bound, then nothing more while no result can be written.
  const held = await steady(() => receiver.count, 'the sends to stop');
  assert.ok(held >= 1000, `${held} sent: at least the bound of unwritten results`);
  assert.ok(held <= MOST_SENT_WHILE_HELD, `${held} sent with no result written (at most ${MOST_SENT_WHILE_HELD})`);
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'done'`);
  assert.equal(rows[0].n, 0, 'no result was written meanwhile');

  await holder.query('SELECT pg_advisory_unlock(4242)');
  await eventually(
    async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].n ===
      BACKLOG,
    'every delivery recorded',
    120_000,
  );
  assert.ok(receiver.count >= BACKLOG);
});

test("a function whose results hold many bytes stops claiming at the results' byte bound, long before their count's", async () => {
  // Each run publishes 200 KB: ClaimLoop's 16 MB of unwritten results is 83 of them, where the count bound is 1000.
  const INVOCATIONS = 600;
  const MOST_CLAIMED_WHILE_HELD = Math.ceil((16 * 1024 * 1024) / 200_000) + 200 + 4; // plus a claim (maxClaim 200) and the slots
  const config: RowcastConfigInput = {
    topics: { out: {} },
    functions: {
      big: {
        handler: 'test/fixtures/handlers/big-publisher.ts',
        concurrency: 4,
        environment: { ENV_TOPIC_ARN: 'out' },
      },
    },
  };
  const fdb = await createTestDatabase();
  let runtime: RowcastRuntime | undefined;
  const lock = await fdb.pool.connect();
  try {
    await applyConfig(fdb.pool, config);
    await fdb.pool.query(holdResultsOn('rowcast.invocations', 'done'));
    await lock.query('SELECT pg_advisory_lock(4242)');
    await fdb.pool.query(`SELECT rowcast.invoke('big', '{}') FROM generate_series(1, ${INVOCATIONS})`);
    runtime = await startTestRowcast(fdb.url, { concurrency: 16 }, parseConfig(config, 'test').functions);
    const claimed = async () =>
      (await fdb.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations WHERE attempts > 0`)).rows[0]
        .n as number;
    // Claimed until the bound, then nothing more while no result can be written.
    const held = await steady(claimed, 'the claims to stop');
    assert.ok(
      held <= MOST_CLAIMED_WHILE_HELD,
      `${held} claimed with no result written (at most ${MOST_CLAIMED_WHILE_HELD})`,
    );

    await lock.query('SELECT pg_advisory_unlock(4242)');
    await eventually(
      async () =>
        (await fdb.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations WHERE state = 'done'`)).rows[0].n ===
        INVOCATIONS,
      'every invocation recorded',
      120_000,
    );
  } finally {
    lock.release();
    await runtime?.stop();
    await fdb.drop();
  }
});

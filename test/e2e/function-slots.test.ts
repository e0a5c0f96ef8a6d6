import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  parseConfig,
  pauseFunction,
  resumeFunction,
  type RowcastConfigInput,
  type RowcastRuntime,
} from '../../src/index.js';
import { FunctionWorker } from '../../src/functions/function-worker.js';
import { claimInvocations, releaseSlots, toClaimedInvocation } from '../../src/functions/invocation-store.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { mostAtOnce } from '../support/spans.js';
import { patient } from '../support/patience.js';

// A function's concurrency slots are session advisory locks (hashtext('rowcast.function:' || name), slot). Session
// advisory locks nest: a slot locked twice by its holder stays held after one unlock. The claim statement must
// therefore never try to lock a slot its connection already holds, whatever plan PostgreSQL picks for it.

let db: TestDatabase;
const config: RowcastConfigInput = {
  functions: {
    slotted: { handler: 'test/fixtures/handlers/overlap.ts', concurrency: 3 },
    overlap: { handler: 'test/fixtures/handlers/overlap.ts', concurrency: 2, timeout: '5s' },
  },
};

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, config);
  // Every connection of this database plans prepared statements generically, as PostgreSQL may choose to on its own
  // after five runs: that is the plan in which the lock could run before the check of the slots held.
  await db.pool.query(`ALTER DATABASE ${db.name} SET plan_cache_mode = force_generic_plan`);
});

after(() => db?.drop());

/** Slot locks of a function held in this database (test files run in parallel, each in its own) by any session or one backend. */
async function slotLocks(fn: string, pid?: number): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objsubid = 2 AND classid::bigint = (hashtext('rowcast.function:' || $1)::bigint & 4294967295)
        AND ($2::int IS NULL OR pid = $2)`,
    [fn, pid ?? null],
  );
  return rows[0]!.n;
}

test('claims with slots held never lock them again: one release frees them (generic plan, EXPLAIN VERBOSE, pg_locks)', async () => {
  const holder = await db.pool.connect();
  const other = await db.pool.connect();
  try {
    const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    // The test pool's connections predate the ALTER DATABASE.
    await holder.query('SET plan_cache_mode = force_generic_plan');
    // Nothing due and nothing waiting in the process: no slot is taken (to be given back at once).
    assert.deepEqual((await claimInvocations(holder, 'slotted', 0, { held: [], limit: 2 }, 60_000, 'me')).taken, []);
    assert.equal(await slotLocks('slotted', pid), 0);
    // Invocations wait in the process (leased by routing): slots are taken for them.
    assert.deepEqual(
      (await claimInvocations(holder, 'slotted', 0, { held: [], limit: 2, waiting: true }, 60_000, 'me')).taken,
      [0, 1],
    );
    // Slot 2 belongs to another session, so every further claim looks at all three slots and takes none.
    assert.equal(
      (await other.query(`SELECT pg_try_advisory_lock(hashtext('rowcast.function:slotted'), 2) AS ok`)).rows[0].ok,
      true,
    );
    for (let i = 0; i < 50; i++)
      assert.deepEqual(
        (await claimInvocations(holder, 'slotted', 0, { held: [0, 1], limit: 3, waiting: true }, 60_000, 'me')).taken,
        [],
      );

    assert.equal(await slotLocks('slotted', pid), 2);
    await releaseSlots(holder, 'slotted', [0, 1]);
    assert.equal(await slotLocks('slotted', pid), 0, 'one release per slot taken frees every slot');

    // Why: in the cached (generic) plan the check of the slots held must come before the lock.
    const plan = (
      await holder.query(
        `EXPLAIN (VERBOSE) EXECUTE rowcast_claim_invocations('slotted', 0, 3, '{0,1}', 60000, 'me', true)`,
      )
    ).rows
      .map((r) => r['QUERY PLAN'] as string)
      .join('\n');
    const filter = plan.split('\n').find((line) => line.includes('pg_try_advisory_lock'));
    assert.ok(filter, plan);
    assert.ok(
      filter.includes('$4') && filter.indexOf('$4') < filter.indexOf('pg_try_advisory_lock'),
      `the held slots ($4) are checked before the lock is tried:\n${plan}`,
    );
    const { rows } = await other.query(
      `SELECT pg_try_advisory_lock(hashtext('rowcast.function:slotted'), s) AS ok FROM generate_series(0, 1) s`,
    );
    assert.deepEqual(
      rows.map((r) => r.ok),
      [true, true],
      'another session can take them',
    );
  } finally {
    await other.query('SELECT pg_advisory_unlock_all()');
    await holder.query('SELECT pg_advisory_unlock_all()');
    holder.release();
    other.release();
  }
});

/**
 * As routing's statement leases new invocations of `slotted` to a process for the slots it held when the statement
 * began: created in flight, leased to `owner` for 60 s, then handed to its worker as routing hands them over.
 */
async function leaseToWorker(worker: FunctionWorker, owner: string, n: number, ms: number): Promise<string[]> {
  const { rows } = await db.pool.query(
    `INSERT INTO rowcast.invocations (function, payload, source, state, attempts, available_at, lease_owner, lease, started_at)
     SELECT 'slotted', $3, 'capture', 'in_flight', 1, now() + interval '60 seconds', $1, gen_random_uuid(), now()
       FROM generate_series(1, $2)
     RETURNING id::text, attempts, lease::text, payload, client_context, trace`,
    [owner, n, JSON.stringify({ ms })],
  );
  worker.adoptInvocations(
    rows.map((r) => toClaimedInvocation('slotted', r)),
    { wanted: new Map([['slotted', { n, leaseMs: 60_000 }]]), owner, claimedAt: Date.now() },
  );
  return rows.map((r) => r.id);
}

const doneCount = async (fn = 'overlap') =>
  (
    await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations WHERE function = $1 AND state = 'done'`, [
      fn,
    ])
  ).rows[0].n as number;

test(
  'two processes never run more than concurrency handlers at once, and give every slot back when idle',
  { timeout: patient(120_000) },
  async () => {
    const functions = parseConfig(config, 'test config').functions;
    const runtimes: RowcastRuntime[] = [];
    try {
      runtimes.push(await startTestRowcast(db.url, {}, functions), await startTestRowcast(db.url, {}, functions));
      // Waves, so both processes claim and give slots back repeatedly. While the test holds slot 1, a process
      // holds slot 0 and keeps claiming with a slot held and one missing: the case where a held slot could be locked
      // again.
      const blocker = await db.pool.connect();
      try {
        for (let wave = 1; wave <= 3; wave++) {
          await blocker.query(`SELECT pg_advisory_lock(hashtext('rowcast.function:overlap'), 1)`);
          await db.pool.query(`SELECT rowcast.invoke('overlap', '{"ms": 5}', 'api') FROM generate_series(1, 100)`);
          await eventually(
            async () => (await doneCount()) >= 100 * (wave - 1) + 20,
            `wave ${wave}: 20 done in slot 0`,
            60_000,
          );
          await blocker.query(`SELECT pg_advisory_unlock(hashtext('rowcast.function:overlap'), 1)`);
          await eventually(async () => (await doneCount()) === 100 * wave, `wave ${wave} done`, 60_000);
          // Idle, each process gives its slots back (after a second without work): none may stay locked.
          await eventually(async () => (await slotLocks('overlap')) === 0, `every slot given back after wave ${wave}`);
        }
      } finally {
        blocker.release();
      }
      const { rows } = await db.pool.query(`SELECT result FROM rowcast.invocations WHERE function = 'overlap'`);
      const spans = rows.map((r) => JSON.parse(r.result) as { start: number; end: number });
      const most = mostAtOnce(spans);
      assert.ok(most <= 2, `at most 2 handlers ran at once over both processes, saw ${most}`);
    } finally {
      for (const r of runtimes) await r.stop();
    }
    assert.equal(await slotLocks('overlap'), 0, 'no slot held after both stopped');
  },
);

test(
  'invocations routing leases to a process that gave its slots back meanwhile still run: it takes slots for them',
  { timeout: patient(60_000) },
  async () => {
    const { slotted } = parseConfig(config, 'test config').functions;
    const owner = 'adopting-process';
    const options = { owner, concurrency: 8, lease: 60_000, pollInterval: 200 };
    const worker = new FunctionWorker(db.pool, { slotted: slotted! }, options, createLogger('warn'), () => {});
    await worker.start();
    try {
      // Idle, the worker takes its slots on each claim and gives them back at once (nothing ran for over a second).
      await eventually(async () => (await slotLocks('slotted')) === 0, 'slots given back while idle');
      // Routing's statement leased these to the process for the slots it held when the statement began (the race).
      await leaseToWorker(worker, owner, 3, 5);
      await eventually(
        async () => (await doneCount('slotted')) === 3,
        'the three invocations ran (they waited for good for a claim that never came)',
        20_000,
      );
    } finally {
      await worker.stop(5_000);
    }
    assert.equal(await slotLocks('slotted'), 0, 'no slot held after it stopped');
  },
);

test(
  'a function whose work arrives only leased by routing keeps its slots: it is busy, not idle',
  { timeout: patient(60_000) },
  async () => {
    const { slotted } = parseConfig(config, 'test config').functions;
    const owner = 'busy-process';
    const options = { owner, concurrency: 8, lease: 60_000, pollInterval: 100 };
    const worker = new FunctionWorker(db.pool, { slotted: slotted! }, options, createLogger('warn'), () => {});
    await worker.start();
    try {
      await db.pool.query(`SELECT rowcast.invoke('slotted', '{"ms": 1}', 'api')`);
      worker.wake();
      await eventually(async () => (await slotLocks('slotted')) > 0, 'slots taken for the first invocation');
      // For three times the idle time after which slots go back (with them a runtime's warm processes), work comes
      // only as routing's direct leases, every 100 ms; the worker's polls claim nothing in between.
      const until = Date.now() + 3_000;
      while (Date.now() < until) {
        await leaseToWorker(worker, owner, 1, 1);
        await new Promise((r) => setTimeout(r, 100));
        assert.ok((await slotLocks('slotted')) > 0, 'the slots stay held while leased work keeps arriving');
      }
    } finally {
      await worker.stop(5_000);
    }
  },
);

test(
  'invocations routing leases to a process for a function paused meanwhile go back to pending at once, not at the end of their lease',
  { timeout: patient(60_000) },
  async () => {
    const { slotted } = parseConfig(config, 'test config').functions;
    const owner = 'pausing-process';
    const options = { owner, concurrency: 8, lease: 60_000, pollInterval: 200 };
    const worker = new FunctionWorker(db.pool, { slotted: slotted! }, options, createLogger('warn'), () => {});
    await worker.start();
    try {
      // Paused, and the process has heard (its reload) by the time routing's statement hands its leases over.
      await pauseFunction(db.pool, 'slotted');
      await worker.reloadTopics();
      const ids = await leaseToWorker(worker, owner, 3, 5);
      await eventually(
        async () =>
          (
            await db.pool.query(
              `SELECT count(*)::int AS n FROM rowcast.invocations WHERE id = ANY ($1::uuid[]) AND state = 'pending' AND attempts = 0`,
              [ids],
            )
          ).rows[0].n === 3,
        'the three handed back, never attempted (their lease had 60 s to run)',
        10_000,
      );
    } finally {
      await resumeFunction(db.pool, 'slotted');
      await worker.stop(5_000);
    }
  },
);

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import { FunctionWorker } from '../../src/functions/function-worker.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  routerAsleep,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';

// What wakes a process's function worker (docs/architecture.md, Wake-ups): an invocation queued by SQL announces
// itself (rowcast.invoke's NOTIFY carries 'invocations', migration 036), and routing wakes it for the invocations it
// queued. A captured change for a topic is none of its business.

const config: RowcastConfigInput = {
  topics: { items: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  functions: { quick: { handler: 'test/fixtures/handlers/overlap.ts' } },
};

let db: TestDatabase;
let rowcast: RowcastRuntime;
let wakes = 0;
const wake = FunctionWorker.prototype.wake;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, config);
  FunctionWorker.prototype.wake = function (this: FunctionWorker) {
    wakes++;
    wake.call(this);
  };
  // A poll a minute apart: anything sooner is a wake-up.
  rowcast = await startTestRowcast(db.url, { pollInterval: 60_000 }, parseConfig(config, 'test').functions);
});

after(async () => {
  FunctionWorker.prototype.wake = wake;
  await rowcast?.stop();
  await db?.drop();
});

const sleeping = () => routerAsleep(db.pool);

/** Queues an invocation by SQL and waits until it ran (the poll is a minute away: only a wake-up runs it in time). */
async function invokeAndWait(): Promise<void> {
  const { rows } = await db.pool.query(`SELECT rowcast.invoke('quick', '{"ms": 1}') AS id`);
  await eventually(
    async () =>
      (await db.pool.query('SELECT state FROM rowcast.invocations WHERE id = $1', [rows[0].id])).rows[0]?.state ===
      'done',
    'the invocation done',
  );
}

test('captured changes for a topic never wake the function worker', async () => {
  await sleeping();
  const before = wakes;
  for (let id = 1; id <= 10; id++) {
    await sleeping();
    await db.pool.query('INSERT INTO items VALUES ($1)', [id]);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT 1 FROM rowcast.log_messages('items', 0, 9223372036854775807)`)).rowCount === id,
      `row ${id} routed`,
    );
  }
  await sleeping();
  assert.equal(wakes - before, 0);
});

test('an invocation queued by SQL runs at once, not at the next poll', async () => {
  await sleeping();
  await invokeAndWait();
  assert.ok(wakes > 0);
});

test('an invocation queued by SQL while every router is awake (capture under load) runs at once, not at the next poll', async () => {
  await sleeping();
  // The function worker's own flag (migration 039), set before it sleeps.
  await eventually(
    async () => (await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE functions_sleeping')).rowCount,
    'the function worker to sleep',
  );
  // Routers that route without pause clear their flags. This one stays asleep and writes its flag only when it
  // changes it, so the cleared flag stands for the rest of this test.
  await db.pool.query('UPDATE rowcast.dispatchers SET sleeping = false');
  try {
    const before = wakes;
    await invokeAndWait();
    assert.ok(wakes > before);
  } finally {
    await db.pool.query('UPDATE rowcast.dispatchers SET sleeping = true');
  }
});

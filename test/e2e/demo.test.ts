import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { describeRun, REPO_ROOT, runNode } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});

after(async () => {
  await db?.drop();
});

test('npm run demo: the reference scenario delivers 4 signed notifications and exits 0', { timeout: 120_000 }, async () => {
  const run = await runNode(path.join(REPO_ROOT, 'examples/demo/run.ts'), [], { env: { DATABASE_URL: db.url }, timeoutMs: 90_000 });
  assert.equal(run.signal, null, `the demo did not finish within 90 s: ${describeRun(run)}`);
  assert.equal(run.code, 0, describeRun(run));
  assert.match(run.stdout, /notification 4\/4: signature verified/, describeRun(run));
  assert.equal(run.stdout.match(/signature verified/g)?.length, 4, describeRun(run));
  assert.ok(!run.stdout.includes('signature INVALID'), describeRun(run));
  for (let n = 1; n <= 4; n++) assert.match(run.stdout, new RegExp(`notification ${n}/4: signature verified`));
  assert.match(run.stdout, /all 4 notifications arrived, signatures verified, in \d+ ms/);
  assert.match(run.stdout, /apply: \+ capture customer_business_events on public\.customer_business_events/);

  // The demo left its table and capture behind, with the four rows captured and delivered.
  const { rows } = await db.pool.query(`SELECT count(*)::int AS events, count(*) FILTER (WHERE routed_at IS NOT NULL)::int AS routed FROM rowcast.events`);
  assert.deepEqual(rows[0], { events: 4, routed: 4 });
  const delivered = await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'done'`);
  assert.equal(delivered.rows[0].n, 4);
});

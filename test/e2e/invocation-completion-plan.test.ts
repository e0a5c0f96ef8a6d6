import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { COMPLETION_SQL } from '../../src/functions/invocation-store.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

// Results are recorded in batches of up to a few hundred by one statement (completeInvocations). Each result must
// find its invocation through the primary key: a plan that scans the batch's rows and, for each, every result
// (a join filter over the unnest) is quadratic in the batch, and was half the statement's time at 200.

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, { functions: { fn: { handler: 'test/fixtures/handlers/overlap.ts' } } });
  // A table of the size where plans matter, with statistics, as a running installation has.
  await db.pool.query(`SELECT rowcast.invoke('fn', '{}', 'api') FROM generate_series(1, 5000)`);
  await db.pool.query('ANALYZE rowcast.invocations');
});

after(() => db?.drop());

test('recording a batch of results looks each invocation up by its key (generic plan, EXPLAIN VERBOSE)', async () => {
  const client = await db.pool.connect();
  try {
    // PostgreSQL may switch a prepared statement to its generic plan on its own after five runs: test that one.
    await client.query('SET plan_cache_mode = force_generic_plan');
    const empty = Array.from({ length: 18 }, () => []);
    await client.query({
      name: 'completion',
      text: COMPLETION_SQL,
      values: [...empty, [], [], 0, null, '0', null, [], true],
    });
    const args = [...empty.map(() => `'{}'`), `'{}'`, `'{}'`, '0', 'NULL', `'0'`, 'NULL', `'{}'`, 'true'].join(', ');
    const plan = (await client.query(`EXPLAIN (VERBOSE) EXECUTE completion(${args})`)).rows
      .map((r) => r['QUERY PLAN'] as string)
      .join('\n');
    const update = plan.slice(plan.indexOf('Update on rowcast.invocations'));
    assert.match(update, /Index Cond: \(i\.id = r\.id\)/, `each result's row is found by its id:\n${plan}`);
    assert.doesNotMatch(update.split('CTE m')[0]!, /Join Filter/, `no result is compared with every row:\n${plan}`);
  } finally {
    await client.query('RESET plan_cache_mode');
    client.release();
  }
});

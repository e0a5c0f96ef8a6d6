import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apply, generateSecret } from '../../src/capture/apply.js';
import { parseConfig } from '../../src/config/load.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { ErrorCodes, RowcastError } from '../../src/errors.js';
import { allRowcastTriggers, captureFunctions } from '../support/catalog.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric);
    CREATE SCHEMA shop;
    CREATE TABLE shop.customers (id int PRIMARY KEY, name text);`);
});

after(async () => {
  await db?.drop();
});

/** A config whose good parts (a topic, a subscription, a capture on orders) would apply if the bad ones did not stop them. */
function config(extra: RowcastConfigInput['captures']): RowcastConfigInput {
  return {
    topics: { orders: {}, other: {} },
    captures: { good: { table: 'orders', topic: 'orders' }, ...extra },
    subscriptions: { hook: { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook', secret: generateSecret() } },
  };
}

async function assertNothingApplied(): Promise<void> {
  const count = async (table: string) => (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.${table}`)).rows[0].n;
  assert.equal(await count('topics'), 0, 'no topic rows');
  assert.equal(await count('subscriptions'), 0, 'no subscription rows');
  assert.equal(await count('captures'), 0, 'no capture rows');
  assert.deepEqual(await allRowcastTriggers(db.pool), [], 'no triggers');
  assert.deepEqual(await captureFunctions(db.pool), [], 'no trigger functions');
}

async function applyError(input: RowcastConfigInput): Promise<RowcastError> {
  const err = await apply(db.pool, parseConfig(input)).then(
    () => assert.fail('apply succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RowcastError, String(err));
  return err;
}

describe('apply refuses a config that does not match the database, and applies nothing', () => {
  test('a missing table is named with its key path', async () => {
    const err = await applyError(config({ missing: { table: 'shop.ordres', topic: 'other' } }));
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
    assert.equal(err.problems.length, 1, err.message);
    assert.match(err.problems[0]!, /^captures\.missing\.table: table shop\.ordres does not exist or is not visible to this database user; create it first, fix the name, or grant access\.$/);
    assert.match(err.message, /nothing was applied/);
    await assertNothingApplied();
  });

  test('a table of the same name in another schema does not count', async () => {
    const err = await applyError(config({ elsewhere: { table: 'customers', topic: 'other' } }));
    assert.match(err.problems[0]!, /^captures\.elsewhere\.table: table public\.customers does not exist/);
    await assertNothingApplied();
  });

  test('a missing column is named with its key path, and the table\'s columns are listed', async () => {
    const err = await applyError(config({ cols: { table: { schema: 'shop', name: 'customers' }, topic: 'other', columns: ['name', 'email', 'phone'] } }));
    assert.equal(err.problems.length, 1, err.message);
    assert.equal(err.problems[0], 'captures.cols.columns: shop.customers has no column "email", "phone"; its columns are id, name.');
    await assertNothingApplied();
  });

  test('every problem is reported at once', async () => {
    const err = await applyError(config({ a: { table: 'nope', topic: 'other' }, b: { table: 'orders', topic: 'other', columns: ['Status'] } }));
    assert.deepEqual(err.problems.map((p) => p.slice(0, p.indexOf(':'))), ['captures.a.table', 'captures.b.columns']);
    await assertNothingApplied();
  });

  test('a condition PostgreSQL rejects fails apply at that step and rolls everything back', async () => {
    const err = await applyError(config({ bad: { table: 'orders', topic: 'other', when: { update: 'NEW.no_such_column > 1' } } }));
    assert.equal(err.code, ErrorCodes.CAPTURE_INVALID);
    assert.match(err.message, /^apply failed at "\+ capture bad on public\.orders .*" and nothing was applied: .*no_such_column/);
    await assertNothingApplied();
  });

  test('a dry run reports the same problems', async () => {
    await assert.rejects(apply(db.pool, parseConfig(config({ missing: { table: 'nope', topic: 'other' } })), { dryRun: true }), /captures\.missing\.table: table public\.nope does not exist/);
    await assertNothingApplied();
  });

  test('once the table exists, the same config applies', async () => {
    await db.pool.query('CREATE TABLE shop.ordres (id int PRIMARY KEY)');
    const result = await apply(db.pool, parseConfig(config({ missing: { table: 'shop.ordres', topic: 'other' } })));
    assert.ok(result.applied);
    assert.deepEqual(await captureFunctions(db.pool), ['capture_good', 'capture_missing']);
  });
});

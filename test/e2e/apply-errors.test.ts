import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apply,
  generateSecret,
  parseConfig,
  type RowcastConfigInput,
  ErrorCodes,
  RowcastError,
} from '../../src/index.js';
import { ident } from '../../src/store/sql.js';
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
    subscriptions: {
      hook: { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook', secret: generateSecret() },
    },
  };
}

async function assertNothingApplied(): Promise<void> {
  const count = async (table: string) =>
    (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.${table}`)).rows[0].n;
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
    assert.match(
      err.problems[0]!,
      /^captures\.missing\.table: table shop\.ordres does not exist or is not visible to this database user; create it first, fix the name, or grant access\.$/,
    );
    assert.match(err.message, /nothing was applied/);
    await assertNothingApplied();
  });

  test('a table of the same name in another schema does not count', async () => {
    const err = await applyError(config({ elsewhere: { table: 'customers', topic: 'other' } }));
    assert.match(err.problems[0]!, /^captures\.elsewhere\.table: table public\.customers does not exist/);
    await assertNothingApplied();
  });

  test("a missing column is named with its key path, and the table's columns are listed", async () => {
    const err = await applyError(
      config({
        cols: { table: { schema: 'shop', name: 'customers' }, topic: 'other', columns: ['name', 'email', 'phone'] },
      }),
    );
    assert.equal(err.problems.length, 1, err.message);
    assert.equal(
      err.problems[0],
      'captures.cols.columns: shop.customers has no column "email", "phone"; its columns are id, name.',
    );
    await assertNothingApplied();
  });

  test('every problem is reported at once', async () => {
    const err = await applyError(
      config({ a: { table: 'nope', topic: 'other' }, b: { table: 'orders', topic: 'other', columns: ['Status'] } }),
    );
    assert.deepEqual(
      err.problems.map((p) => p.slice(0, p.indexOf(':'))),
      ['captures.a.table', 'captures.b.columns'],
    );
    await assertNothingApplied();
  });

  test('a condition PostgreSQL rejects fails apply at that step and rolls everything back', async () => {
    const err = await applyError(
      config({ bad: { table: 'orders', topic: 'other', when: { update: 'NEW.no_such_column > 1' } } }),
    );
    assert.equal(err.code, ErrorCodes.CAPTURE_INVALID);
    assert.match(
      err.message,
      /^apply failed at "\+ capture bad on public\.orders .*" and nothing was applied: .*no_such_column/,
    );
    await assertNothingApplied();
  });

  test('a dry run reports the same problems', async () => {
    await assert.rejects(
      apply(db.pool, parseConfig(config({ missing: { table: 'nope', topic: 'other' } })), { dryRun: true }),
      /captures\.missing\.table: table public\.nope does not exist/,
    );
    await assertNothingApplied();
  });

  test('once the table exists, the same config applies', async () => {
    await db.pool.query('CREATE TABLE shop.ordres (id int PRIMARY KEY)');
    const result = await apply(db.pool, parseConfig(config({ missing: { table: 'shop.ordres', topic: 'other' } })));
    assert.ok(result.applied);
    assert.deepEqual(await captureFunctions(db.pool), ['capture_good', 'capture_missing']);
  });
});

/** Every row of every table in schema rowcast, every user trigger and every function of schema rowcast, as text. */
async function dump(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  const tables = await db.pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'rowcast' AND c.relkind IN ('r', 'p') ORDER BY 1`,
  );
  for (const { name } of tables.rows) {
    const rows = await db.pool.query<{ r: string }>(
      `SELECT to_jsonb(x)::text AS r FROM rowcast.${ident(name)} x ORDER BY 1`,
    );
    result[`table rowcast.${name}`] = rows.rows.map((r) => r.r);
  }
  result.triggers = (
    await db.pool.query<{ d: string }>(
      `SELECT pg_get_triggerdef(oid) AS d FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`,
    )
  ).rows.map((r) => r.d);
  result.functions = (
    await db.pool.query<{ d: string }>(
      `SELECT pg_get_functiondef(p.oid) AS d FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'rowcast' AND p.prokind = 'f' ORDER BY 1`,
    )
  ).rows.map((r) => r.d);
  return result;
}

describe('an apply that fails part-way leaves the database exactly as it was', () => {
  const secret = generateSecret();
  const base: RowcastConfigInput = {
    topics: { orders: { description: 'orders' }, customers: {} },
    captures: {
      orders: { table: 'orders', topic: 'orders', operations: ['INSERT', 'UPDATE'] },
      customers: { table: 'shop.customers', topic: 'customers' },
    },
    subscriptions: {
      hook: { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook', secret },
      audit: { topic: 'customers', protocol: 'http', endpoint: 'http://127.0.0.1:9/audit' },
    },
  };

  test('topics, subscriptions, a secret rotation and triggers changed before the failing step are all rolled back', async () => {
    await apply(db.pool, parseConfig(base));
    await db.pool.query(`INSERT INTO orders VALUES (1, 'new', 10)`);
    const before = await dump();
    assert.ok(
      before.triggers!.length >= 4 && before['table rowcast.events']!.length === 1,
      JSON.stringify(before, null, 1),
    );

    // Every kind of change, and last a capture whose condition PostgreSQL rejects.
    const changed: RowcastConfigInput = {
      topics: { orders: { description: 'all orders' }, customers: {}, extra: { fifo: true } },
      captures: {
        orders: { table: 'orders', topic: 'orders', operations: ['INSERT', 'DELETE'], payload: 'diff' },
        extra: { table: 'orders', topic: 'extra' },
        zz_broken: { table: 'shop.customers', topic: 'extra', when: 'NEW.no_such_column > 1' },
      },
      subscriptions: {
        hook: { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/moved', secret: generateSecret() },
        added: { topic: 'extra', protocol: 'http', endpoint: 'http://127.0.0.1:9/added' },
      },
    };
    const plan = await apply(db.pool, parseConfig(changed), { dryRun: true });
    const failing = plan.steps.findIndex((s) => s.summary.includes('capture zz_broken'));
    assert.ok(
      failing >= 8,
      `the failing step comes after many others:\n${plan.steps.map((s) => s.summary).join('\n')}`,
    );
    const err = await applyError(changed);
    assert.equal(err.code, ErrorCodes.CAPTURE_INVALID);
    assert.match(
      err.message,
      /^apply failed at "\+ capture zz_broken on shop\.customers .*" and nothing was applied: .*no_such_column/,
    );
    assert.ok(!err.message.includes(secret), 'no secret in the error');
    assert.deepEqual(await dump(), before);
    // The triggers that were there still capture.
    await db.pool.query(`UPDATE orders SET status = 'paid' WHERE id = 1`);
    assert.equal(
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'orders'`)).rows[0].n,
      2,
    );
  });

  test('a secret from an environment variable that is not a Standard Webhooks secret: refused, not printed, nothing applied', async () => {
    const before = await dump();
    const variable = 'ROWCAST_TEST_BAD_SECRET';
    process.env[variable] = 'hunter2-not-a-webhook-secret';
    try {
      const err = await applyError({
        ...base,
        subscriptions: {
          ...base.subscriptions,
          hook: { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook', secret: { env: variable } },
        },
      });
      assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
      assert.deepEqual(err.problems, [
        `subscriptions.hook.secret: the value of $${variable} is not a Standard Webhooks secret ("whsec_" + base64 of 24–64 bytes).`,
      ]);
      assert.ok(!err.message.includes('hunter2'), 'the value is never printed');
    } finally {
      delete process.env[variable];
    }
    assert.deepEqual(await dump(), before);
  });
});

describe("a capture whose triggers went behind rowcast's back is reinstalled by the next apply", () => {
  const captured = (when?: string): RowcastConfigInput => ({
    topics: { invoices: {} },
    captures: {
      invoices: {
        table: 'invoices',
        topic: 'invoices',
        operations: ['INSERT', 'UPDATE'],
        ...(when ? { when: { update: when } } : {}),
      },
    },
  });

  test('a trigger dropped by hand, or with its table dropped and re-created', async () => {
    await db.pool.query('CREATE TABLE invoices (id int PRIMARY KEY, status text)');
    await apply(db.pool, parseConfig(captured()));
    await db.pool.query('DROP TRIGGER rowcast_invoices_update ON invoices');
    const plan = await apply(db.pool, parseConfig(captured()), { dryRun: true });
    assert.ok(
      plan.steps.length > 0 &&
        plan.steps.every(
          (s) =>
            s.summary ===
            '~ capture invoices on public.invoices (INSERT, UPDATE → topic invoices, payload row): its triggers are missing, reinstalled',
        ),
      plan.steps.map((s) => s.summary).join('\n'),
    );
    await apply(db.pool, parseConfig(captured()));
    assert.deepEqual(await allRowcastTriggers(db.pool).then((t) => t.filter((x) => x.startsWith('public.invoices:'))), [
      'public.invoices:rowcast_invoices_insert',
      'public.invoices:rowcast_invoices_update',
    ]);
    assert.deepEqual((await apply(db.pool, parseConfig(captured()), { dryRun: true })).steps, []);

    await db.pool.query('DROP TABLE invoices; CREATE TABLE invoices (id int PRIMARY KEY, status text)');
    await apply(db.pool, parseConfig(captured()));
    await db.pool.query(`INSERT INTO invoices VALUES (1, 'new')`);
    assert.equal(
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'invoices'`)).rows[0].n,
      1,
      'captured again',
    );
  });

  test('a column named in a when condition: PostgreSQL refuses to drop it; dropped with CASCADE, apply says what to fix', async () => {
    await apply(db.pool, parseConfig(captured('NEW.status IS DISTINCT FROM OLD.status')));
    await assert.rejects(
      db.pool.query('ALTER TABLE invoices DROP COLUMN status'),
      (err: Error & { detail?: string }) => {
        assert.match(err.message, /cannot drop column status of table invoices because other objects depend on it/);
        assert.match(err.detail ?? '', /trigger rowcast_invoices_update on table invoices depends on column status/);
        return true;
      },
    );
    await db.pool.query('ALTER TABLE invoices DROP COLUMN status CASCADE');
    await db.pool.query(`INSERT INTO invoices VALUES (2)`);
    const err = await applyError(captured('NEW.status IS DISTINCT FROM OLD.status'));
    assert.equal(err.code, ErrorCodes.CAPTURE_INVALID);
    assert.match(
      err.message,
      /^apply failed at "~ capture invoices on public\.invoices .*: its triggers are missing, reinstalled" and nothing was applied: .*status/,
    );
    // Without the condition it installs again.
    await apply(db.pool, parseConfig(captured()));
    assert.deepEqual(await allRowcastTriggers(db.pool).then((t) => t.filter((x) => x.startsWith('public.invoices:'))), [
      'public.invoices:rowcast_invoices_insert',
      'public.invoices:rowcast_invoices_update',
    ]);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import { listMigrations } from '../../src/store/migrate.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/*
 * The reference design's application writes its table with its own role, which owns nothing of rowcast. Such a
 * role has its table rights and USAGE on aws_commons and aws_lambda (as on RDS), nothing on schema rowcast; its
 * writes must go through the capture triggers and aws_lambda.invoke, and it must not be able to use rowcast's
 * functions to write anything else into schema rowcast.
 */

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime | undefined;
/** The application role: unique per test database, since roles are cluster-wide. */
let role: string;
let app: pg.Pool;

const ARN = 'arn:aws:lambda:us-east-2:123456789100:function:f1';
const PASSWORD = 'app-writer';

const config = (): RowcastConfigInput => ({
  topics: { notifications: {}, changes: {} },
  functions: {
    f1: {
      handler: 'test/fixtures/handlers/publisher.ts',
      environment: { ENV_TOPIC_ARN: 'notifications' },
      minDelay: '50ms',
      maxDelay: '100ms',
    },
  },
  captures: {
    rows: { table: 'r', topic: 'changes', payload: 'diff', operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] },
    statements: {
      table: 's',
      topic: 'changes',
      payload: 'diff',
      mode: 'statement',
      operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'],
      when: { update: 'OLD.v IS DISTINCT FROM NEW.v' },
    },
  },
  subscriptions: {
    notifications: { topic: 'notifications', protocol: 'http', endpoint: receiver.url },
    changes: { topic: 'changes', protocol: 'http', endpoint: receiver.url },
  },
});

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  role = `rowcast_app_${db.name}`.slice(0, 63);
  const r = pg.escapeIdentifier(role);
  // The reference scenario: the application's trigger calls aws_lambda.invoke with the row.
  await db.pool.query(`
    CREATE TABLE public.t (id int PRIMARY KEY, v text);
    CREATE FUNCTION public.my_db_trigger_function() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM * FROM aws_lambda.invoke(aws_commons.create_lambda_function_arn('${ARN}'), row_to_json(NEW)::json, 'Event');
      RETURN NEW;
    END $$;
    CREATE TRIGGER my_db_trigger AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.my_db_trigger_function();
    CREATE TABLE public.r (id int PRIMARY KEY, v text, n numeric);
    CREATE TABLE public.s (id int PRIMARY KEY, v text, n numeric);
    CREATE ROLE ${r} LOGIN PASSWORD '${PASSWORD}';
    GRANT INSERT, SELECT ON public.t TO ${r};
    GRANT INSERT, SELECT, UPDATE, DELETE, TRUNCATE ON public.r, public.s TO ${r};
    GRANT USAGE ON SCHEMA aws_commons, aws_lambda TO ${r};
    -- A table of its own, to which it might try to attach rowcast's functions.
    CREATE TABLE public.mine (id int PRIMARY KEY, v text);
    ALTER TABLE public.mine OWNER TO ${r};
  `);
  await applyConfig(db.pool, config());
  rowcast = await startTestRowcast(db.url, {}, parseConfig(config(), 'test config').functions);
  const url = new URL(db.url);
  url.username = role;
  url.password = PASSWORD;
  app = new pg.Pool({ connectionString: url.toString(), max: 2 });
});

after(async () => {
  await app?.end();
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
  // The role's objects and grants went with the database; the role itself is the cluster's.
  if (role) {
    const admin = new pg.Client({ connectionString: process.env.ROWCAST_TEST_ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
    await admin.end();
  }
});

const eventsOf = async (table: string) =>
  (
    await db.pool.query(
      `SELECT op, key, before, after, changed FROM rowcast.events WHERE table_name = $1 ORDER BY id`,
      [table],
    )
  ).rows;

/** Asserts that a statement of the application role fails with PostgreSQL's permission error matching `what`. */
async function denied(sql: string, what: RegExp): Promise<void> {
  await assert.rejects(app.query(sql), (err: Error & { code?: string }) => {
    assert.equal(err.code, '42501', `${sql}: ${err.message}`);
    assert.match(err.message, what);
    return true;
  });
}

/** Puts back what an installation looked like before migration 012 and this version's apply. */
async function undoFix(): Promise<void> {
  await db.pool.query(`DO $$
    DECLARE f regprocedure;
    BEGIN
      FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'aws_lambda'::regnamespace AND p.proname = 'invoke' LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER RESET search_path', f);
      END LOOP;
      FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'rowcast'::regnamespace LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
      END LOOP;
    END $$;
    UPDATE rowcast.captures SET settings = jsonb_set(settings, '{hash}', '"before 012"')`);
}

describe('application roles (table rights and USAGE on aws_commons, aws_lambda; nothing on rowcast)', () => {
  test('the reference scenario: its INSERT commits, and the function publishes the row', async () => {
    await app.query(`INSERT INTO public.t VALUES (1, 'x')`);
    const got = await eventually(
      () =>
        receiver.requests.find((q) => q.headers['rowcast-subscription'] === 'notifications' && q.json.body?.id === 1),
      'the function to publish the row',
    );
    assert.deepEqual(got.json.body, { id: 1, v: 'x' });
    const { rows } = await db.pool.query(`SELECT function, source FROM rowcast.invocations ORDER BY created_at`);
    assert.deepEqual(rows, [{ function: 'f1', source: 'sql' }]);
  });

  test('every aws_lambda.invoke overload, and DryRun', async () => {
    const calls = [
      `aws_lambda.invoke(aws_commons.create_lambda_function_arn('${ARN}'), '{"o": 1}'::json, 'Event')`,
      `aws_lambda.invoke(aws_commons.create_lambda_function_arn('${ARN}', 'us-east-2'), '{"o": 2}'::jsonb, 'Event')`,
      `aws_lambda.invoke('${ARN}', '{"o": 3}'::json, invocation_type => 'Event')`,
      `aws_lambda.invoke('f1', '{"o": 4}'::jsonb, 'us-east-2', 'Event', 'None', '{"custom": {"k": "v"}}'::jsonb)`,
    ];
    for (const call of calls)
      assert.equal((await app.query(`SELECT status_code FROM ${call}`)).rows[0].status_code, 202, call);
    assert.equal(
      (await app.query(`SELECT status_code FROM aws_lambda.invoke('f1', '{}'::json, invocation_type => 'DryRun')`))
        .rows[0].status_code,
      204,
    );
    await assert.rejects(
      app.query(`SELECT * FROM aws_lambda.invoke('nope', '{}'::json, invocation_type => 'Event')`),
      /function "nope" does not exist/,
    );
    for (const o of [1, 2, 3, 4])
      await eventually(() => receiver.requests.some((q) => q.json?.body?.o === o), `overload ${o} to run the function`);
  });

  test('row-level and statement-level captures write their events', async () => {
    for (const table of ['r', 's']) {
      await app.query(`INSERT INTO public.${table} SELECT g, 'new', g * 1.5 FROM generate_series(1, 3) g`);
      await app.query(`UPDATE public.${table} SET v = 'paid' WHERE id = 2`);
      await app.query(`DELETE FROM public.${table} WHERE id = 3`);
      await app.query(`TRUNCATE public.${table}`);
    }
    const row = await eventsOf('r');
    assert.deepEqual(
      row.map((e) => `${e.op} ${e.key?.id ?? ''}`),
      ['INSERT 1', 'INSERT 2', 'INSERT 3', 'UPDATE 2', 'DELETE 3', 'TRUNCATE '],
    );
    assert.deepEqual(row[3], {
      op: 'UPDATE',
      key: { id: 2 },
      before: { id: 2, v: 'new', n: '3.0' },
      after: { id: 2, v: 'paid', n: '3.0' },
      changed: ['v'],
    });
    const key = (e: unknown) => JSON.stringify(e);
    assert.deepEqual((await eventsOf('s')).map(key).sort(), row.map(key).sort());
    const delivered = () =>
      new Set(
        receiver.requests
          .filter((q) => q.headers['rowcast-subscription'] === 'changes')
          .map((q) => q.headers['webhook-id']),
      ).size;
    await eventually(() => delivered() >= 12, 'the 12 events to be delivered');
  });

  test('nothing in schema rowcast is reachable: no table, no function', async () => {
    await denied(
      `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name) VALUES ('rows', 'changes', 'INSERT', 'public', 'r')`,
      /permission denied for schema rowcast/,
    );
    await denied(`SELECT rowcast.invoke('f1', '{}')`, /permission denied for schema rowcast/);
    await denied(
      `SELECT * FROM rowcast.aws_lambda_invoke('f1', '{}', 'Event', 'None', NULL)`,
      /permission denied for schema rowcast/,
    );
  });

  test("with USAGE on rowcast (to call rowcast.invoke directly), no function writes elsewhere than invoke's queue", async () => {
    const r = pg.escapeIdentifier(role);
    await db.pool.query(`GRANT USAGE ON SCHEMA rowcast TO ${r}`);
    try {
      const { rows } = await app.query(`SELECT rowcast.invoke('f1', '{"direct": true}') AS id`);
      await eventually(
        () => receiver.requests.some((q) => q.json?.body?.direct === true),
        'the directly invoked function to run',
      );
      assert.ok(rows[0].id);
      await assert.rejects(app.query(`SELECT rowcast.invoke('nope', '{}')`), /function "nope" does not exist/);
      await denied(
        `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name) VALUES ('rows', 'changes', 'INSERT', 'public', 'r')`,
        /permission denied for table events/,
      );
      await denied(
        `INSERT INTO rowcast.invocations (function, payload, source) VALUES ('f1', '{}', 'capture')`,
        /permission denied for table invocations/,
      );
      await denied(
        `SELECT * FROM rowcast.aws_lambda_invoke('f1', '{}', 'Event', 'None', NULL)`,
        /permission denied for function (rowcast\.)?aws_lambda_invoke/,
      );
      await denied(
        `SELECT rowcast.lambda_function_name('${ARN}')`,
        /permission denied for function (rowcast\.)?lambda_function_name/,
      );
      // A capture's function attached to the role's own table would write that table's rows as the capture's events.
      for (const fn of ['capture_rows', 'capture_statements']) {
        await denied(
          `CREATE TRIGGER hijack AFTER INSERT ON public.mine FOR EACH STATEMENT EXECUTE FUNCTION rowcast.${pg.escapeIdentifier(fn)}()`,
          new RegExp(`permission denied for function (rowcast\\.)?${fn}`),
        );
      }
      await app.query(`INSERT INTO public.mine VALUES (1, 'mine')`);
      assert.deepEqual(await eventsOf('mine'), []);
    } finally {
      await db.pool.query(`REVOKE USAGE ON SCHEMA rowcast FROM ${r}`);
    }
  });

  test('every SECURITY DEFINER function pins its search_path; only the invoke entry points are open to PUBLIC', async () => {
    const { rows } = await db.pool.query(`
      SELECT p.oid::regprocedure::text AS fn, p.proconfig AS config, has_function_privilege('public', p.oid, 'EXECUTE') AS public
        FROM pg_proc p WHERE p.pronamespace IN ('rowcast'::regnamespace, 'aws_lambda'::regnamespace) AND p.prosecdef ORDER BY 1`);
    const unpinned = rows.filter((f) => !(f.config ?? []).includes('search_path=pg_catalog, pg_temp')).map((f) => f.fn);
    assert.deepEqual(unpinned, []);
    const open = rows.filter((f) => f.public).map((f) => f.fn.replace(/\(.*/, ''));
    assert.deepEqual([...new Set(open)], ['aws_lambda.invoke', 'rowcast.invoke']);
  });

  test('an existing installation gets the fix from migrate and from apply', async () => {
    await undoFix();
    await assert.rejects(
      app.query(`INSERT INTO public.t VALUES (2, 'before')`),
      /permission denied for schema rowcast/,
    );
    // Migration 012, as `rowcast migrate` runs it on an installation made before it.
    const migration = listMigrations().find((m) => m.id === 12);
    assert.ok(migration, 'migration 012 exists');
    await db.pool.query(`BEGIN; ${migration.sql}; COMMIT`);
    await app.query(`INSERT INTO public.t VALUES (2, 'after')`);
    await eventually(
      () => receiver.requests.some((q) => q.json?.body?.v === 'after'),
      'the function to publish the row',
    );
    const open = async () =>
      (
        await db.pool.query(
          `SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'rowcast'::regnamespace AND p.proname LIKE 'capture%' AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1`,
        )
      ).rows.map((f) => f.proname);
    assert.deepEqual(await open(), []);
    // Apply: the captures' functions are generated again, without EXECUTE for PUBLIC.
    await undoFix();
    assert.deepEqual(await open(), ['capture_rows', 'capture_statements']);
    await applyConfig(db.pool, config());
    assert.deepEqual(await open(), []);
    await app.query(`INSERT INTO public.r VALUES (10, 'applied', 1)`);
    assert.equal((await eventsOf('r')).at(-1)?.key?.id, 10);
  });
});

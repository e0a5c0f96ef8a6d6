import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apply,
  formatPlan,
  generateSecret,
  parseConfig,
  type RowcastConfigInput,
  type RowcastRuntime,
  ErrorCodes,
  RowcastError,
  type Pool,
} from '../../src/index.js';
import { ident, qualified } from '../../src/store/sql.js';
import { allRowcastTriggers, captureFunctions, tableExists, triggersOn } from '../support/catalog.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** Pads a name with "x" to exactly 63 bytes, PostgreSQL's longest identifier. */
function pad63(s: string): string {
  const padded = s + 'x'.repeat(63 - bytes(s));
  assert.equal(bytes(padded), 63);
  return padded;
}

// Table and column names that break naive SQL generation in every way we know of.
const INJECT_TABLE = `x"; DROP TABLE victim; --`;
const INJECT_PK = `id"; DROP TABLE victim; --`;
const INJECT_COLS = [`it's`, `semi;colon`, `--comment`, `back\\slash`, `dq"in"side`];
const DOLLAR_TABLE = `$rowcast$ DROP TABLE victim; $rowcast$`;
const DOLLAR_COL = `$rowcast$; DROP TABLE victim; --`;
const UNICODE_TABLE = 'Bestellungen-ü-表';
const LONG_TABLE = pad63('t' + 'ä'.repeat(31)); // multibyte, 63 bytes
const LONG_COL = pad63('ö'.repeat(31));
const HOSTILE_SCHEMA = pad63(`sch"ema'; DROP TABLE victim; --.$rowcast$ü`);
const SCHEMA_TABLE = `ta.ble`;
const LONG_CAPTURE = `long-${'x'.repeat(35)}`; // 40 characters, the longest allowed

const TABLES_SQL = `
  CREATE TABLE victim (id int PRIMARY KEY);
  INSERT INTO victim VALUES (1);
  CREATE TABLE ${ident(INJECT_TABLE)} (${ident(INJECT_PK)} int PRIMARY KEY, ${INJECT_COLS.map((c) => `${ident(c)} text`).join(', ')});
  CREATE TABLE ${ident(DOLLAR_TABLE)} (id int PRIMARY KEY, ${ident(DOLLAR_COL)} text, "$$" numeric);
  CREATE TABLE ${ident(UNICODE_TABLE)} ("select" int PRIMARY KEY, "user" text, "from" text, "Größe" numeric(10,2), "order" bigint);
  CREATE TABLE ${ident(LONG_TABLE)} (id int PRIMARY KEY, ${ident(LONG_COL)} text);
  CREATE SCHEMA ${ident(HOSTILE_SCHEMA)};
  CREATE TABLE ${qualified(HOSTILE_SCHEMA, SCHEMA_TABLE)} (k text PRIMARY KEY, v int);
  -- Similar names: public."a.b" against a.b, "Orders" against orders.
  CREATE TABLE public."a.b" (id int PRIMARY KEY, v text);
  CREATE SCHEMA a;
  CREATE TABLE a.b (id int PRIMARY KEY, v text);
  CREATE TABLE public."Orders" (id int PRIMARY KEY, v text);
  CREATE TABLE public.orders (id int PRIMARY KEY, v text);
  CREATE TABLE tickets (id int PRIMARY KEY, status text, note text);
  CREATE TABLE people (id int PRIMARY KEY, name text, password text, age bigint);`;

const secret = generateSecret();

function baseConfig(endpoint: string): RowcastConfigInput {
  return {
    topics: { all: {} },
    captures: {
      inject: { table: { schema: 'public', name: INJECT_TABLE }, topic: 'all', payload: 'diff' },
      dollar: { table: { schema: 'public', name: DOLLAR_TABLE }, topic: 'all' },
      unicode: { table: UNICODE_TABLE, topic: 'all', payload: 'diff' },
      [LONG_CAPTURE]: { table: LONG_TABLE, topic: 'all', operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] },
      schema63: { table: { schema: HOSTILE_SCHEMA, name: SCHEMA_TABLE }, topic: 'all' },
      'a-dot-b': { table: { schema: 'public', name: 'a.b' }, topic: 'all' },
      a_dot_b: { table: 'a.b', topic: 'all' },
      Orders: { table: 'Orders', topic: 'all' },
      orders: { table: 'orders', topic: 'all' },
      ORDERS: { table: 'public.orders', topic: 'all', payload: 'keys' },
      tickets: { table: 'tickets', topic: 'all', when: { update: 'OLD.status IS DISTINCT FROM NEW.status' } },
      'people-row': { table: 'people', topic: 'all', columns: ['name', 'age'] },
      'people-diff': { table: 'people', topic: 'all', payload: 'diff', columns: ['name', 'age'] },
    },
    subscriptions: { hook: { topic: 'all', protocol: 'http', endpoint, secret } },
  };
}

interface EventRow {
  id: string;
  capture: string;
  op: string;
  schema_name: string;
  table_name: string;
  key: any;
  before: any;
  after: any;
  changed: string[] | null;
}

async function eventsOf(pool: Pool, capture: string): Promise<EventRow[]> {
  return (
    await pool.query<EventRow>(
      'SELECT id, capture, op, schema_name, table_name, key, before, after, changed FROM rowcast.events WHERE capture = $1 ORDER BY id',
      [capture],
    )
  ).rows;
}

describe('hostile identifiers: capture, route and deliver', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  let rowcast: RowcastRuntime;

  before(async () => {
    db = await createTestDatabase();
    receiver = await WebhookReceiver.start(secret);
    await db.pool.query(TABLES_SQL);
    await applyConfig(db.pool, baseConfig(receiver.url));
    rowcast = await startTestRowcast(db.url);
  });

  after(async () => {
    await rowcast?.stop();
    await receiver?.close();
    await db?.drop();
  });

  const hooksOf = (capture: string) => receiver.requests.filter((r) => r.json?.attributes?.capture === capture);

  test('names with quotes, semicolons, comments, backslashes: exact names in events and webhooks, no injection', async () => {
    const t = ident(INJECT_TABLE);
    const [c0, c1, c2, c3, c4] = INJECT_COLS.map(ident);
    await db.pool.query(
      `INSERT INTO ${t} (${ident(INJECT_PK)}, ${c0}, ${c1}, ${c2}, ${c3}, ${c4}) VALUES (1, 'a', 'b', 'c', 'd', 'e')`,
    );
    await db.pool.query(`UPDATE ${t} SET ${c1} = 'B' WHERE ${ident(INJECT_PK)} = 1`);
    await db.pool.query(`DELETE FROM ${t} WHERE ${ident(INJECT_PK)} = 1`);

    const events = await eventsOf(db.pool, 'inject');
    assert.deepEqual(
      events.map((e) => e.op),
      ['INSERT', 'UPDATE', 'DELETE'],
    );
    for (const e of events) {
      assert.equal(e.schema_name, 'public');
      assert.equal(e.table_name, INJECT_TABLE);
      assert.deepEqual(e.key, { [INJECT_PK]: 1 });
    }
    const row = {
      [INJECT_PK]: 1,
      [INJECT_COLS[0]!]: 'a',
      [INJECT_COLS[1]!]: 'b',
      [INJECT_COLS[2]!]: 'c',
      [INJECT_COLS[3]!]: 'd',
      [INJECT_COLS[4]!]: 'e',
    };
    assert.deepEqual(events[0]!.after, row);
    assert.deepEqual(events[1]!.before, row);
    assert.deepEqual(events[1]!.after, { ...row, [INJECT_COLS[1]!]: 'B' });
    assert.deepEqual(events[1]!.changed, [INJECT_COLS[1]]);

    const hooks = await eventually(
      () => hooksOf('inject').length >= 3 && hooksOf('inject'),
      'three webhooks of capture inject',
    );
    assert.ok(hooks.every((h) => h.verified));
    const del = hooks.find((h) => h.json.body.op === 'DELETE')!;
    assert.deepEqual(del.json.attributes, { op: 'DELETE', schema: 'public', table: INJECT_TABLE, capture: 'inject' });
    assert.equal(del.json.body.source.table, INJECT_TABLE);
    assert.deepEqual(del.json.body.key, { [INJECT_PK]: 1 });

    assert.ok(await tableExists(db.pool, 'public', 'victim'), 'table victim survived');
    assert.equal((await db.pool.query('SELECT count(*)::int AS n FROM victim')).rows[0].n, 1);
  });

  test('$rowcast$ (the dollar-quote tag of the trigger body) in table and column names', async () => {
    const t = ident(DOLLAR_TABLE);
    await db.pool.query(`INSERT INTO ${t} VALUES (1, 'dollars', 12.50)`);
    await db.pool.query(`UPDATE ${t} SET ${ident(DOLLAR_COL)} = 'more' WHERE id = 1`);
    await db.pool.query(`DELETE FROM ${t} WHERE id = 1`);
    const events = await eventsOf(db.pool, 'dollar');
    assert.deepEqual(
      events.map((e) => e.op),
      ['INSERT', 'UPDATE', 'DELETE'],
    );
    assert.ok(events.every((e) => e.table_name === DOLLAR_TABLE));
    assert.deepEqual(events[0]!.after, { id: 1, [DOLLAR_COL]: 'dollars', $$: '12.50' });
    assert.deepEqual(events[1]!.after, { id: 1, [DOLLAR_COL]: 'more', $$: '12.50' });
    assert.deepEqual(events[2]!.before, { id: 1, [DOLLAR_COL]: 'more', $$: '12.50' });
    await eventually(() => hooksOf('dollar').length >= 3, 'three webhooks of capture dollar');
    assert.equal(hooksOf('dollar')[0]!.json.body.source.table, DOLLAR_TABLE);
    assert.ok(await tableExists(db.pool, 'public', 'victim'));
  });

  test('unicode table name, reserved-word columns', async () => {
    const t = ident(UNICODE_TABLE);
    await db.pool.query(`INSERT INTO ${t} VALUES (7, 'ann', 'here', 12.5, 9007199254740993)`);
    await db.pool.query(`UPDATE ${t} SET "user" = 'bob' WHERE "select" = 7`);
    await db.pool.query(`DELETE FROM ${t} WHERE "select" = 7`);
    const events = await eventsOf(db.pool, 'unicode');
    assert.deepEqual(
      events.map((e) => e.op),
      ['INSERT', 'UPDATE', 'DELETE'],
    );
    assert.ok(events.every((e) => e.table_name === UNICODE_TABLE && e.schema_name === 'public'));
    assert.deepEqual(events[0]!.after, {
      select: 7,
      user: 'ann',
      from: 'here',
      Größe: '12.50',
      order: '9007199254740993',
    });
    assert.deepEqual(events[1]!.changed, ['user']);
    assert.deepEqual(events[2]!.key, { select: 7 });
    const hooks = await eventually(
      () => hooksOf('unicode').length >= 3 && hooksOf('unicode'),
      'three webhooks of capture unicode',
    );
    assert.ok(
      hooks.every((h) => h.json.attributes.table === UNICODE_TABLE && h.json.body.source.table === UNICODE_TABLE),
    );
    // The wire text carries the bigint's every digit.
    assert.ok(hooks.some((h) => h.body.includes('"9007199254740993"')));
  });

  test('63-byte table and column names, a 63-byte hostile schema, a 40-character capture name', async () => {
    assert.deepEqual(
      await triggersOn(db.pool, 'public', LONG_TABLE),
      ['delete', 'insert', 'truncate', 'update'].map((op) => `rowcast_${LONG_CAPTURE}_${op}`),
    );
    await db.pool.query(`INSERT INTO ${ident(LONG_TABLE)} VALUES (1, 'long')`);
    await db.pool.query(`UPDATE ${ident(LONG_TABLE)} SET ${ident(LONG_COL)} = 'longer'`);
    await db.pool.query(`TRUNCATE ${ident(LONG_TABLE)}`);
    const long = await eventsOf(db.pool, LONG_CAPTURE);
    assert.deepEqual(
      long.map((e) => e.op),
      ['INSERT', 'UPDATE', 'TRUNCATE'],
    );
    assert.ok(long.every((e) => e.table_name === LONG_TABLE));
    assert.deepEqual(long[1]!.after, { id: 1, [LONG_COL]: 'longer' });

    const target = qualified(HOSTILE_SCHEMA, SCHEMA_TABLE);
    await db.pool.query(`INSERT INTO ${target} VALUES ('k''1', 1)`);
    await db.pool.query(`UPDATE ${target} SET v = 2`);
    await db.pool.query(`DELETE FROM ${target}`);
    const events = await eventsOf(db.pool, 'schema63');
    assert.deepEqual(
      events.map((e) => e.op),
      ['INSERT', 'UPDATE', 'DELETE'],
    );
    assert.ok(events.every((e) => e.schema_name === HOSTILE_SCHEMA && e.table_name === SCHEMA_TABLE));
    assert.deepEqual(events[0]!.key, { k: "k'1" });
    const hooks = await eventually(
      () => hooksOf('schema63').length >= 3 && hooksOf('schema63'),
      'three webhooks of capture schema63',
    );
    assert.ok(
      hooks.every((h) => h.json.body.source.schema === HOSTILE_SCHEMA && h.json.attributes.schema === HOSTILE_SCHEMA),
    );
    assert.ok(await tableExists(db.pool, 'public', 'victim'));
  });

  test('similarly named tables and captures do not collide', async () => {
    await db.pool.query(`INSERT INTO public."a.b" VALUES (1, 'public."a.b"')`);
    await db.pool.query(`INSERT INTO a.b VALUES (2, 'a.b')`);
    await db.pool.query(`INSERT INTO public."Orders" VALUES (3, 'Orders')`);
    await db.pool.query(`INSERT INTO public.orders VALUES (4, 'orders')`);

    const dotted = await eventsOf(db.pool, 'a-dot-b');
    assert.deepEqual(
      dotted.map((e) => [e.schema_name, e.table_name, e.after.v]),
      [['public', 'a.b', 'public."a.b"']],
    );
    const schemaA = await eventsOf(db.pool, 'a_dot_b');
    assert.deepEqual(
      schemaA.map((e) => [e.schema_name, e.table_name, e.after.v]),
      [['a', 'b', 'a.b']],
    );
    const upper = await eventsOf(db.pool, 'Orders');
    assert.deepEqual(
      upper.map((e) => [e.table_name, e.after.v]),
      [['Orders', 'Orders']],
    );
    const lower = await eventsOf(db.pool, 'orders');
    assert.deepEqual(
      lower.map((e) => [e.table_name, e.after.v]),
      [['orders', 'orders']],
    );
    // A second capture on the same table, its name differing only in case: both fire, each with its own payload.
    const keys = await eventsOf(db.pool, 'ORDERS');
    assert.deepEqual(
      keys.map((e) => [e.table_name, e.key, e.after]),
      [['orders', { id: 4 }, null]],
    );
    assert.deepEqual(await triggersOn(db.pool, 'public', 'orders'), [
      'rowcast_ORDERS_delete',
      'rowcast_ORDERS_insert',
      'rowcast_ORDERS_update',
      'rowcast_orders_delete',
      'rowcast_orders_insert',
      'rowcast_orders_update',
    ]);
    await eventually(
      () => ['a-dot-b', 'a_dot_b', 'Orders', 'orders', 'ORDERS'].every((c) => hooksOf(c).length === 1),
      'one webhook per capture',
    );
    assert.equal(hooksOf('a_dot_b')[0]!.json.body.after.v, 'a.b');
    assert.equal(hooksOf('Orders')[0]!.json.body.source.table, 'Orders');
  });

  test('when: { update } captures only the updates that change status', async () => {
    await db.pool.query(`INSERT INTO tickets VALUES (1, 'open', 'a')`);
    await db.pool.query(`UPDATE tickets SET note = 'b' WHERE id = 1`); // status unchanged: not captured
    await db.pool.query(`UPDATE tickets SET status = 'closed' WHERE id = 1`);
    await db.pool.query(`UPDATE tickets SET status = 'closed', note = 'c' WHERE id = 1`); // same status: not captured
    await db.pool.query(`UPDATE tickets SET status = NULL WHERE id = 1`); // NULL is distinct from 'closed'
    await db.pool.query(`DELETE FROM tickets WHERE id = 1`); // DELETE has no condition
    const events = await eventsOf(db.pool, 'tickets');
    assert.deepEqual(
      events.map((e) => [e.op, (e.after ?? e.before).status, (e.after ?? e.before).note]),
      [
        ['INSERT', 'open', 'a'],
        ['UPDATE', 'closed', 'b'],
        ['UPDATE', null, 'c'],
        ['DELETE', null, 'c'],
      ],
    );
  });

  test('columns limit the row and diff payloads; the key is always the primary key', async () => {
    await db.pool.query(`INSERT INTO people VALUES (1, 'ann', 'hunter2', 41)`);
    await db.pool.query(`UPDATE people SET password = 'hunter3' WHERE id = 1`);
    await db.pool.query(`UPDATE people SET age = 42 WHERE id = 1`);
    await db.pool.query(`DELETE FROM people WHERE id = 1`);
    const row = await eventsOf(db.pool, 'people-row');
    assert.deepEqual(
      row.map((e) => [e.op, e.key, e.before, e.after]),
      [
        ['INSERT', { id: 1 }, null, { name: 'ann', age: '41' }],
        ['UPDATE', { id: 1 }, null, { name: 'ann', age: '41' }],
        ['UPDATE', { id: 1 }, null, { name: 'ann', age: '42' }],
        ['DELETE', { id: 1 }, { name: 'ann', age: '42' }, null],
      ],
    );
    const diff = await eventsOf(db.pool, 'people-diff');
    assert.deepEqual(
      diff.map((e) => [e.op, e.changed]),
      [
        ['INSERT', null],
        ['UPDATE', []],
        ['UPDATE', ['age']],
        ['DELETE', null],
      ],
    );
    assert.deepEqual(diff[2]!.before, { name: 'ann', age: '41' });
    assert.deepEqual(diff[2]!.after, { name: 'ann', age: '42' });
    const hooks = await eventually(
      () => hooksOf('people-row').length >= 4 && hooksOf('people-row'),
      'four webhooks of capture people-row',
    );
    assert.ok(
      hooks.every((h) => !h.body.includes('hunter')),
      'the password column never leaves the database',
    );
  });

  test('apply --dry-run changes nothing and prints CREATE TRIGGER with quoted names', async () => {
    const NEW_TABLE = `new"; DROP TABLE victim; --`;
    await db.pool.query(`CREATE TABLE ${ident(NEW_TABLE)} (id int PRIMARY KEY)`);
    const input = baseConfig(receiver.url);
    input.topics!['new-topic'] = {};
    input.captures!['new-capture'] = { table: { schema: 'public', name: NEW_TABLE }, topic: 'new-topic' };
    const before = await allRowcastTriggers(db.pool);

    const result = await apply(db.pool, parseConfig(input), { dryRun: true });
    assert.equal(result.applied, false);
    const plan = formatPlan(result.steps);
    // Only the additions are planned: the rest of the database already matches.
    assert.deepEqual(
      [...new Set(result.steps.map((s) => s.summary.split(' ').slice(0, 3).join(' ')))],
      ['+ topic new-topic', '+ capture new-capture'],
    );
    assert.ok(plan.includes(`CREATE OR REPLACE FUNCTION rowcast."capture_new-capture"()`), plan);
    for (const op of ['insert', 'update', 'delete']) {
      assert.ok(
        plan.includes(
          `CREATE TRIGGER "rowcast_new-capture_${op}" AFTER ${op.toUpperCase()} ON "public"."new""; DROP TABLE victim; --" FOR EACH ROW EXECUTE FUNCTION rowcast."capture_new-capture"()`,
        ),
        `${op} trigger in the plan:\n${plan}`,
      );
    }

    assert.deepEqual(await triggersOn(db.pool, 'public', NEW_TABLE), []);
    assert.deepEqual(await allRowcastTriggers(db.pool), before);
    assert.ok(!(await captureFunctions(db.pool)).includes('capture_new-capture'));
    assert.equal(
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.topics WHERE name = 'new-topic'`)).rows[0].n,
      0,
    );
    assert.equal(
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.captures WHERE name = 'new-capture'`)).rows[0].n,
      0,
    );
    await db.pool.query(`INSERT INTO ${ident(NEW_TABLE)} VALUES (1)`);
    assert.equal((await eventsOf(db.pool, 'new-capture')).length, 0);
    assert.ok(await tableExists(db.pool, 'public', 'victim'));
  });
});

describe('hostile identifiers: reconciling', () => {
  let db: TestDatabase;
  const T = `re"con'cile;--`;

  before(async () => {
    db = await createTestDatabase();
    await db.pool.query(`CREATE TABLE ${ident(T)} (id int PRIMARY KEY, "user" text)`);
  });
  after(async () => {
    await db?.drop();
  });

  const config = (captures: RowcastConfigInput['captures']): RowcastConfigInput => ({
    topics: { t: {} },
    captures,
    subscriptions: {
      s: {
        topic: 't',
        protocol: 'http',
        endpoint: 'http://127.0.0.1:9/hook',
        secret,
        deliveryPolicy: { minDelay: '250ms' },
      },
    },
  });

  test('re-applying an unchanged config has nothing to do', async () => {
    const input = config({
      keep: {
        table: { schema: 'public', name: T },
        topic: 't',
        when: { update: 'OLD."user" IS DISTINCT FROM NEW."user"' },
      },
      drop: {
        table: { schema: 'public', name: T },
        topic: 't',
        operations: ['INSERT', 'DELETE', 'TRUNCATE'],
        payload: 'keys',
      },
    });
    const first = await apply(db.pool, parseConfig(input));
    assert.ok(first.applied && first.steps.length > 0);
    const again = await apply(db.pool, parseConfig(input));
    assert.deepEqual(again.steps, [], formatPlan(again.steps));
    assert.equal(formatPlan(again.steps), '-- nothing to change: the database matches the config\n');
    assert.deepEqual((await apply(db.pool, parseConfig(input), { dryRun: true })).steps, []);
  });

  test('dropping an operation removes its trigger; the others stay', async () => {
    await apply(
      db.pool,
      parseConfig(
        config({
          keep: {
            table: { schema: 'public', name: T },
            topic: 't',
            when: { update: 'OLD."user" IS DISTINCT FROM NEW."user"' },
          },
          drop: { table: { schema: 'public', name: T }, topic: 't', operations: ['INSERT'], payload: 'keys' },
        }),
      ),
    );
    assert.deepEqual(await triggersOn(db.pool, 'public', T), [
      'rowcast_drop_insert',
      'rowcast_keep_delete',
      'rowcast_keep_insert',
      'rowcast_keep_update',
    ]);
    assert.deepEqual(
      (await db.pool.query(`SELECT triggers FROM rowcast.captures WHERE name = 'drop'`)).rows[0].triggers,
      ['rowcast_drop_insert'],
    );
    await db.pool.query(`INSERT INTO ${ident(T)} VALUES (1, 'u')`);
    await db.pool.query(`DELETE FROM ${ident(T)}`);
    const { rows } = await db.pool.query(`SELECT capture, op FROM rowcast.events ORDER BY id`);
    assert.deepEqual(rows.map((r) => `${r.capture}:${r.op}`).sort(), ['drop:INSERT', 'keep:DELETE', 'keep:INSERT']);
  });

  test('removing a capture from the config removes its triggers and function', async () => {
    assert.ok((await captureFunctions(db.pool)).includes('capture_drop'));
    const result = await apply(
      db.pool,
      parseConfig(
        config({
          keep: {
            table: { schema: 'public', name: T },
            topic: 't',
            when: { update: 'OLD."user" IS DISTINCT FROM NEW."user"' },
          },
        }),
      ),
    );
    assert.ok(
      result.steps.every((s) => s.summary.startsWith(`- capture drop on public.${T}`)),
      formatPlan(result.steps),
    );
    assert.deepEqual(await triggersOn(db.pool, 'public', T), [
      'rowcast_keep_delete',
      'rowcast_keep_insert',
      'rowcast_keep_update',
    ]);
    assert.deepEqual(await captureFunctions(db.pool), ['capture_keep']);
    assert.deepEqual((await db.pool.query(`SELECT name FROM rowcast.captures`)).rows, [{ name: 'keep' }]);

    await apply(db.pool, parseConfig(config({})));
    assert.deepEqual(await triggersOn(db.pool, 'public', T), []);
    assert.deepEqual(await captureFunctions(db.pool), []);
  });

  test('invalid capture names are refused, saying what a name may contain', () => {
    for (const bad of ['has space', 'x'.repeat(41), 'semi;colon', 'quo"te', '']) {
      assert.throws(
        () => parseConfig({ topics: { t: {} }, captures: { [bad]: { table: 'x', topic: 't' } } }),
        (err: unknown) => {
          assert.ok(err instanceof RowcastError);
          assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
          assert.equal(err.problems.length, 1, err.message);
          assert.ok(err.problems[0]!.startsWith(`captures.${bad}: `), err.message);
          assert.match(err.problems[0]!, /1–40 letters, digits, "-" or "_"/);
          return true;
        },
        `capture name ${JSON.stringify(bad)}`,
      );
    }
    // The longest allowed name is accepted.
    assert.ok(
      parseConfig({ topics: { t: {} }, captures: { [LONG_CAPTURE]: { table: 'x', topic: 't' } } }).captures[
        LONG_CAPTURE
      ],
    );
  });
});

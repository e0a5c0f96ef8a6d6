import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RowcastConfigInput, RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/*
 * Statement-level capture (mode: statement) must write exactly the events row-level capture writes. Each table
 * below exists twice, r_* captured per row and s_* per statement with the same settings; the same statements run
 * on both, and their events are compared field by field.
 */

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime | undefined;

type CaptureInput = NonNullable<RowcastConfigInput['captures']>[string];
type Capture = Omit<CaptureInput, 'table'>;
const pairs: Record<string, { ddl: string; capture: Capture }> = {
  rows: {
    ddl: '(id bigint PRIMARY KEY, status text, total numeric(20,4), tags int8[])',
    capture: { payload: 'row', operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] },
  },
  diffs: {
    ddl: '(a int, b text, v text, n numeric, PRIMARY KEY (a, b))',
    capture: { payload: 'diff', operations: ['INSERT', 'UPDATE', 'DELETE'] },
  },
  keys: {
    ddl: '(id int PRIMARY KEY, v text)',
    capture: { payload: 'keys', operations: ['INSERT', 'UPDATE', 'DELETE'] },
  },
  cols: {
    ddl: '(id int PRIMARY KEY, secret text, shown text, amount bigint)',
    capture: { payload: 'diff', columns: ['shown', 'amount'], operations: ['INSERT', 'UPDATE', 'DELETE'] },
  },
  conds: {
    ddl: '(id int PRIMARY KEY, total int, status text)',
    capture: {
      payload: 'diff',
      operations: ['INSERT', 'UPDATE', 'DELETE'],
      when: { insert: 'NEW.total > 100', update: 'OLD.status IS DISTINCT FROM NEW.status', delete: 'OLD.total > 100' },
    },
  },
  nokey: { ddl: '(x int, y text)', capture: { payload: 'row', operations: ['INSERT', 'UPDATE', 'DELETE'] } },
};

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  for (const [name, { ddl }] of Object.entries(pairs))
    await db.pool.query(`CREATE TABLE r_${name} ${ddl}; CREATE TABLE s_${name} ${ddl}`);
  const captures: Record<string, CaptureInput> = {};
  for (const [name, { capture }] of Object.entries(pairs)) {
    captures[`r-${name}`] = { table: `r_${name}`, topic: 'changes', ...capture, mode: 'row' };
    captures[`s-${name}`] = { table: `s_${name}`, topic: 'changes', ...capture, mode: 'statement' };
  }
  await applyConfig(db.pool, {
    topics: { changes: {} },
    captures,
    subscriptions: { hook: { topic: 'changes', protocol: 'http', endpoint: receiver.url } },
  });
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

/** Runs the statement on both tables of a pair ($T is the table). */
async function both(name: string, sql: string): Promise<void> {
  await db.pool.query(sql.replaceAll('$T', `r_${name}`));
  await db.pool.query(sql.replaceAll('$T', `s_${name}`));
}

/** The events of one table, in id order, without what differs between the two captures. */
async function eventsOf(table: string) {
  const { rows } = await db.pool.query(
    `SELECT op, key, before, after, changed FROM rowcast.events WHERE table_name = $1 ORDER BY id`,
    [table],
  );
  return rows.map((r) => ({ ...r, changed: r.changed === null ? null : [...r.changed].sort() }));
}

async function assertSameEvents(name: string, expectedCount: number) {
  const row = await eventsOf(`r_${name}`);
  const statement = await eventsOf(`s_${name}`);
  assert.equal(row.length, expectedCount, `row-level capture of ${name} wrote ${row.length} events`);
  // Within one statement PostgreSQL gives no row order; compare as sets.
  const key = (e: unknown) => JSON.stringify(e);
  assert.deepEqual(statement.map(key).sort(), row.map(key).sort());
}

describe('statement-level capture (transition tables)', () => {
  test('INSERT, UPDATE, DELETE of many rows: the same events as row-level, with exact numbers', async () => {
    await both(
      'rows',
      `INSERT INTO $T SELECT g, 'new', g * 1.5, ARRAY[g, 9007199254740993] FROM generate_series(1, 100) g`,
    );
    await both('rows', `UPDATE $T SET status = 'paid' WHERE id <= 10`);
    await both('rows', `DELETE FROM $T WHERE id > 95`);
    await both('rows', `UPDATE $T SET status = 'none' WHERE false`);
    await assertSameEvents('rows', 115);
    const [first] = await eventsOf('s_rows');
    assert.deepEqual(first!.key, { id: '1' });
    assert.equal(first!.after.total, '1.5000');
    assert.deepEqual(first!.after.tags, ['1', '9007199254740993']);
  });

  test('diff payloads: before, after and changed columns, with a composite key', async () => {
    await both('diffs', `INSERT INTO $T VALUES (1, 'x', 'one', 1.10), (2, 'y', 'two', 2), (3, 'z', 'three', NULL)`);
    await both('diffs', `UPDATE $T SET v = v || '!', n = 7 WHERE a <= 2`);
    await both('diffs', `DELETE FROM $T WHERE a = 3`);
    await assertSameEvents('diffs', 6);
    const update = (await eventsOf('s_diffs')).find((e) => e.op === 'UPDATE' && e.key.a === 1)!;
    assert.deepEqual(update.key, { a: 1, b: 'x' });
    assert.equal(update.before.v, 'one');
    assert.equal(update.after.v, 'one!');
    assert.deepEqual(update.changed, ['n', 'v']);
  });

  test('keys payloads and column lists', async () => {
    await both('keys', `INSERT INTO $T VALUES (1, 'a'), (2, 'b')`);
    await both('keys', `UPDATE $T SET v = 'c'`);
    await both('keys', `DELETE FROM $T WHERE id = 1`);
    await assertSameEvents('keys', 5);
    await both('cols', `INSERT INTO $T VALUES (1, 'hidden', 'visible', 12345678901234567)`);
    await both('cols', `UPDATE $T SET secret = 'other', shown = 'changed'`);
    await both('cols', `DELETE FROM $T`);
    await assertSameEvents('cols', 3);
    const [insert] = await eventsOf('s_cols');
    assert.deepEqual(insert!.after, { shown: 'visible', amount: '12345678901234567' });
  });

  test('when conditions per operation filter the rows, OLD and NEW as in row triggers', async () => {
    await both('conds', `INSERT INTO $T VALUES (1, 50, 'a'), (2, 150, 'a'), (3, 500, 'a')`);
    await both('conds', `UPDATE $T SET status = CASE WHEN id = 1 THEN 'b' ELSE status END, total = total + 1`);
    await both('conds', `DELETE FROM $T WHERE id IN (1, 2)`);
    // INSERT: 2 and 3; UPDATE: only 1 changed status; DELETE: only 2 had total > 100.
    await assertSameEvents('conds', 4);
  });

  test('a table without a primary key: row events with a null key', async () => {
    await both('nokey', `INSERT INTO $T VALUES (1, 'a'), (2, 'b')`);
    await both('nokey', `UPDATE $T SET y = 'c' WHERE x = 1`);
    await both('nokey', `DELETE FROM $T`);
    await assertSameEvents('nokey', 5);
  });

  test('a rolled-back statement captures nothing; TRUNCATE is one event', async () => {
    const before = (await eventsOf('s_rows')).length;
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO s_rows SELECT g, 'x' FROM generate_series(1000, 1100) g`);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    assert.equal((await eventsOf('s_rows')).length, before);
    await db.pool.query('TRUNCATE s_rows');
    const events = await eventsOf('s_rows');
    assert.equal(events.length, before + 1);
    assert.deepEqual(events.at(-1), { op: 'TRUNCATE', key: null, before: null, after: null, changed: null });
  });

  test('UPDATE with a diff payload or a condition needs a primary key: apply says so', async () => {
    await assert.rejects(
      applyConfig(db.pool, {
        topics: { changes: {} },
        captures: { bad: { table: 'r_nokey', topic: 'changes', mode: 'statement', payload: 'diff' } },
      }),
      (err: Error) => /pairs old and new rows by primary key.*add a primary key, use mode: 'row'/s.test(err.message),
    );
  });

  test('downstream the events are the same messages: a multi-row INSERT reaches the webhook once per row', async () => {
    rowcast = await startTestRowcast(db.url);
    await db.pool.query(`INSERT INTO s_keys VALUES (10, 'p'), (11, 'q'), (12, 'r')`);
    const got = await eventually(() => {
      const hits = receiver.requests.filter(
        (r) => r.json?.attributes?.table === 's_keys' && r.json.body.op === 'INSERT' && r.json.body.key.id >= 10,
      );
      return hits.length === 3 && hits;
    }, 'three webhook requests for the statement');
    for (const r of got) {
      assert.equal(r.json.attributes.capture, 's-keys');
      assert.equal(r.json.body.source.table, 's_keys');
      assert.deepEqual(Object.keys(r.json.body).sort(), [
        'after',
        'before',
        'captured_at',
        'changed',
        'id',
        'key',
        'op',
        'source',
        'trace',
      ]);
    }
  });
});

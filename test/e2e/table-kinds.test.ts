/**
 * Table kinds and schema changes while rowcast runs:
 * - a partitioned table, captured on its parent: rows routed to partitions arrive with the parent's name; TRUNCATE
 *   of the parent is one event;
 * - a table without a primary key: `key` is the whole row in a `keys` payload (null in row/diff payloads);
 * - a column added while rowcast runs appears in later payloads without re-applying (to_jsonb(NEW));
 * - a column dropped while rowcast runs is absent from later payloads and nothing breaks — also a primary-key
 *   column (the key keeps the remaining ones; with none left it is null, and a `keys` payload carries the whole row)
 *   and a column listed in a capture's `columns` (the trigger reads them by name from to_jsonb(NEW));
 * - a bigint column added later arrives as a JSON *number* (to_jsonb's mapping) until `rowcast apply` runs again;
 *   apply notices the table changed, re-installs the capture, and from then on it arrives as a string.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apply, type RowcastConfigInput, parseConfig } from '../../src/index.js';
import { eventually, settled, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let config: RowcastConfigInput;

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    tables: `
    CREATE TABLE measurements (id bigint, region text NOT NULL, value numeric, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
    CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
    CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us');
    CREATE TABLE log_lines (source text, line text, amount numeric);
    CREATE TABLE evolving (id int PRIMARY KEY, name text, obsolete text, old_amount numeric);
    CREATE TABLE readings (sensor text, taken_at int, value numeric, unit text, note text, PRIMARY KEY (sensor, taken_at));
    CREATE TABLE gauges (id bigint PRIMARY KEY, level numeric);`,
    config: ({ receiver }) =>
      (config = {
        topics: { t: {} },
        captures: {
          parts: { table: 'measurements', topic: 't', operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] },
          'log-keys': { table: 'log_lines', topic: 't', payload: 'keys' },
          'log-row': { table: 'log_lines', topic: 't', payload: 'row' },
          'evolving-row': { table: 'evolving', topic: 't' },
          'evolving-diff': { table: 'evolving', topic: 't', payload: 'diff' },
          'readings-row': { table: 'readings', topic: 't' },
          'readings-cols': { table: 'readings', topic: 't', payload: 'diff', columns: ['value', 'unit', 'note'] },
          'readings-keys': { table: 'readings', topic: 't', payload: 'keys' },
          'gauges-keys': { table: 'gauges', topic: 't', payload: 'keys' },
          'gauges-diff': { table: 'gauges', topic: 't', payload: 'diff' },
        },
        subscriptions: { hook: { topic: 't', protocol: 'http', endpoint: receiver.url, format: 'raw' } },
      }),
  }));
});

after(() => close?.());

const of = (capture: string) => (r: ReceivedRequest) => r.json?.source?.capture === capture;
async function waitFor(capture: string, match: (p: any) => boolean, what: string) {
  const r = await eventually(() => receiver.requests.filter(of(capture)).find((r) => match(r.json)), what);
  return r.json;
}

describe('table kinds', () => {
  test('partitioned table: events of rows routed to partitions carry the parent table name', async () => {
    await db.pool.query(`INSERT INTO measurements VALUES (1, 'eu', 1.50), (2, 'us', 2.50)`);
    const eu = await waitFor('parts', (p) => p.op === 'INSERT' && p.after.region === 'eu', 'eu insert');
    const us = await waitFor('parts', (p) => p.op === 'INSERT' && p.after.region === 'us', 'us insert');
    for (const p of [eu, us]) {
      assert.equal(p.source.table, 'measurements');
      assert.equal(p.source.schema, 'public');
    }
    assert.deepEqual(eu.key, { id: '1', region: 'eu' });
    assert.equal(eu.after.value, '1.50');
    // An UPDATE that moves a row to another partition arrives as a DELETE of the old row and an INSERT of the new
    // one (PostgreSQL converts it and fires AFTER DELETE + AFTER INSERT, not AFTER UPDATE), both naming the parent.
    await db.pool.query(`UPDATE measurements SET region = 'us' WHERE id = 1 AND region = 'eu'`);
    const gone = await waitFor('parts', (p) => p.op === 'DELETE', 'the DELETE half of the move');
    const arrived = await waitFor(
      'parts',
      (p) => p.op === 'INSERT' && p.after.id === '1' && p.after.region === 'us',
      'the INSERT half of the move',
    );
    for (const p of [gone, arrived]) assert.equal(p.source.table, 'measurements');
    assert.deepEqual(gone.before, { id: '1', region: 'eu', value: '1.50' });
    assert.deepEqual(arrived.after, { id: '1', region: 'us', value: '1.50' });
    await settled(db.pool);
    assert.deepEqual(
      receiver.requests
        .filter(of('parts'))
        .map((r) => r.json.op)
        .sort(),
      ['DELETE', 'INSERT', 'INSERT', 'INSERT'],
      'no UPDATE event for the move',
    );
  });

  test('TRUNCATE of a partitioned table is one event naming the parent', async () => {
    await db.pool.query('TRUNCATE measurements');
    const p = await waitFor('parts', (p) => p.op === 'TRUNCATE', 'a TRUNCATE notification');
    assert.equal(p.source.table, 'measurements');
    assert.equal(p.key, null);
    assert.equal(p.after, null);
    await settled(db.pool);
    assert.equal(
      receiver.requests.filter(of('parts')).filter((r) => r.json.op === 'TRUNCATE').length,
      1,
      'one event, not one per partition',
    );
  });

  test('no primary key: keys payload carries the whole row; row payload has key null', async () => {
    await db.pool.query(`INSERT INTO log_lines VALUES ('api', 'started', 10.10), ('api', 'started', 10.10)`);
    const keys = await eventually(
      () => receiver.requests.filter(of('log-keys')).length >= 2 && receiver.requests.filter(of('log-keys')),
      'two keys events',
    );
    for (const r of keys) {
      assert.deepEqual(
        r.json.key,
        { source: 'api', line: 'started', amount: '10.10' },
        'the whole row, exact numbers as strings',
      );
      assert.equal(r.json.after, null);
    }
    const row = await waitFor('log-row', (p) => p.op === 'INSERT', 'a row event');
    assert.equal(row.key, null);
    assert.deepEqual(row.after, { source: 'api', line: 'started', amount: '10.10' });
    await db.pool.query(`DELETE FROM log_lines WHERE line = 'started'`);
    await eventually(
      () => receiver.requests.filter(of('log-keys')).filter((r) => r.json.op === 'DELETE').length === 2,
      'two DELETE keys events',
    );
  });

  test('a column added while rowcast runs appears in later payloads without re-applying', async () => {
    await db.pool.query(`INSERT INTO evolving VALUES (1, 'before', 'x', 1.0)`);
    await waitFor('evolving-row', (p) => p.op === 'INSERT' && p.after.id === 1, 'insert before ALTER');
    await db.pool.query(`ALTER TABLE evolving ADD COLUMN colour text DEFAULT 'blue'`);
    await db.pool.query(`INSERT INTO evolving (id, name) VALUES (2, 'after add')`);
    const p = await waitFor('evolving-row', (p) => p.op === 'INSERT' && p.after.id === 2, 'insert after ADD COLUMN');
    assert.equal(p.after.colour, 'blue');
    await db.pool.query(`UPDATE evolving SET colour = 'red' WHERE id = 1`);
    const d = await waitFor('evolving-diff', (p) => p.op === 'UPDATE' && p.after.id === 1, 'diff after ADD COLUMN');
    assert.deepEqual(d.changed, ['colour']);
    assert.equal(d.before.colour, 'blue', 'the default of the added column shows in the old row');
  });

  test('a column dropped while rowcast runs is absent from later payloads and nothing breaks', async () => {
    await db.pool.query(`ALTER TABLE evolving DROP COLUMN obsolete`);
    await db.pool.query(`INSERT INTO evolving (id, name) VALUES (3, 'after drop')`);
    const p = await waitFor('evolving-row', (p) => p.op === 'INSERT' && p.after.id === 3, 'insert after DROP COLUMN');
    assert.ok(!('obsolete' in p.after));
    assert.equal(p.after.name, 'after drop');
  });

  test('an exact-number (numeric) column dropped while rowcast runs: writes still succeed, payloads lack it', async () => {
    // The trigger names numeric/bigint columns to send them as strings; dropping one must not break the writer.
    await db.pool.query(`ALTER TABLE evolving DROP COLUMN old_amount`);
    await db.pool.query(`INSERT INTO evolving (id, name) VALUES (4, 'after numeric drop')`);
    await db.pool.query(`UPDATE evolving SET name = 'renamed' WHERE id = 4`);
    const p = await waitFor(
      'evolving-row',
      (p) => p.op === 'INSERT' && p.after.id === 4,
      'insert after dropping a numeric column',
    );
    assert.ok(!('old_amount' in p.after));
    const d = await waitFor(
      'evolving-diff',
      (p) => p.op === 'UPDATE' && p.after.id === 4,
      'diff after dropping a numeric column',
    );
    assert.ok(!('old_amount' in d.after) && !('old_amount' in d.before));
    assert.deepEqual(d.changed, ['name']);
  });

  test('a bigint column added later is a JSON number until apply runs again, then a string', async () => {
    await db.pool.query(`ALTER TABLE evolving ADD COLUMN big bigint`);
    await db.pool.query(`INSERT INTO evolving (id, big) VALUES (10, 9007199254740993)`);
    const p = await waitFor(
      'evolving-row',
      (p) => p.op === 'INSERT' && p.after.id === 10,
      'insert with the new bigint column',
    );
    const raw = receiver.requests.find(
      (r) => r.json.source.capture === 'evolving-row' && r.json.after?.id === 10,
    )!.body;
    // Before apply: to_jsonb's mapping, a number; all digits are on the wire, but JSON.parse rounds it.
    assert.equal(typeof p.after.big, 'number');
    assert.ok(raw.includes('"big": 9007199254740993') || raw.includes('"big":9007199254740993'), raw);
    assert.equal(p.after.big, 9007199254740992, 'a JavaScript consumer sees 2^53, not 2^53+1');

    // apply notices the table changed and re-installs the captures of that table (and nothing else).
    const result = await apply(db.pool, parseConfig(config, 'test config'));
    assert.equal(result.applied, true);
    const changed = [...new Set(result.steps.map((s) => s.summary))];
    assert.ok(
      changed.some((s) => s.startsWith('~ capture evolving-row on public.evolving')),
      changed.join('\n'),
    );
    assert.ok(
      changed.some((s) => s.startsWith('~ capture evolving-diff on public.evolving')),
      changed.join('\n'),
    );
    assert.ok(
      !changed.some((s) => s.includes('capture parts') || s.includes('capture log-')),
      `only the changed table's captures: ${changed.join('\n')}`,
    );
    const again = await apply(db.pool, parseConfig(config, 'test config'), { dryRun: true });
    assert.deepEqual(again.steps, [], 'a second apply has nothing to do');

    await db.pool.query(`INSERT INTO evolving (id, big) VALUES (11, 9007199254740993)`);
    const q = await waitFor('evolving-row', (p) => p.op === 'INSERT' && p.after.id === 11, 'insert after re-apply');
    assert.equal(q.after.big, '9007199254740993');
    await db.pool.query(`UPDATE evolving SET big = -9223372036854775808 WHERE id = 11`);
    const d = await waitFor('evolving-diff', (p) => p.op === 'UPDATE' && p.after.id === 11, 'diff after re-apply');
    assert.equal(d.before.big, '9007199254740993');
    assert.equal(d.after.big, '-9223372036854775808');
    assert.deepEqual(d.changed, ['big']);
  });

  test('a primary-key column dropped while rowcast runs: writes still succeed, the key keeps the other columns', async () => {
    await db.pool.query(`INSERT INTO readings VALUES ('s1', 1, 20.50, 'C', 'first')`);
    const before = await waitFor(
      'readings-row',
      (p) => p.op === 'INSERT' && p.after.note === 'first',
      'insert before the drop',
    );
    assert.deepEqual(before.key, { sensor: 's1', taken_at: 1 });
    // Dropping a key column drops the primary key constraint with it; the trigger named that column.
    await db.pool.query('ALTER TABLE readings DROP COLUMN taken_at');
    await db.pool.query(`INSERT INTO readings VALUES ('s2', 21.00, 'C', 'second')`);
    await db.pool.query(`UPDATE readings SET value = 22.25 WHERE sensor = 's1'`);
    await db.pool.query(`DELETE FROM readings WHERE sensor = 's2'`);
    const inserted = await waitFor(
      'readings-row',
      (p) => p.op === 'INSERT' && p.after.note === 'second',
      'insert after dropping a key column',
    );
    assert.deepEqual(inserted.key, { sensor: 's2' });
    assert.deepEqual(inserted.after, { sensor: 's2', value: '21.00', unit: 'C', note: 'second' });
    const updated = await waitFor(
      'readings-row',
      (p) => p.op === 'UPDATE' && p.after.sensor === 's1',
      'update after dropping a key column',
    );
    assert.deepEqual(updated.key, { sensor: 's1' });
    const deleted = await waitFor(
      'readings-keys',
      (p) => p.op === 'DELETE',
      'keys payload of a delete after dropping a key column',
    );
    assert.deepEqual(deleted.key, { sensor: 's2' });
  });

  test("a column listed in a capture's columns dropped while rowcast runs: writes succeed, the payload lacks it", async () => {
    await db.pool.query('ALTER TABLE readings DROP COLUMN unit');
    await db.pool.query(`UPDATE readings SET value = 23.000, note = NULL WHERE sensor = 's1'`);
    const d = await waitFor(
      'readings-cols',
      (p) => p.op === 'UPDATE' && p.after.value === '23.000',
      'diff after dropping a listed column',
    );
    assert.deepEqual(d.before, { value: '22.25', note: 'first' }, 'only the listed columns that still exist');
    assert.deepEqual(d.after, { value: '23.000', note: null }, 'a column that exists but is NULL stays, as null');
    assert.deepEqual(d.changed.sort(), ['note', 'value']);
    await db.pool.query(`INSERT INTO readings VALUES ('s3', 1.5, 'third')`);
    const i = await waitFor(
      'readings-cols',
      (p) => p.op === 'INSERT' && p.after.note === 'third',
      'insert after dropping a listed column',
    );
    assert.deepEqual(i.after, { value: '1.5', note: 'third' });
    // apply then says what to change in the config instead of installing a capture of a missing column.
    await assert.rejects(
      apply(db.pool, parseConfig(config, 'test config'), { dryRun: true }),
      /captures\.readings-cols\.columns: public\.readings has no column "unit"; its columns are sensor, value, note\./,
    );
  });

  test('the only primary-key column dropped: writes succeed; key is null, and a keys payload carries the whole row', async () => {
    await db.pool.query('INSERT INTO gauges VALUES (9007199254740993, 1.10)');
    const before = await waitFor('gauges-keys', (p) => p.op === 'INSERT', 'keys event before the drop');
    assert.deepEqual(before.key, { id: '9007199254740993' });
    await db.pool.query('ALTER TABLE gauges DROP COLUMN id');
    await db.pool.query('INSERT INTO gauges VALUES (2.20)');
    await db.pool.query('UPDATE gauges SET level = 3.30 WHERE level = 2.20');
    const keys = await waitFor(
      'gauges-keys',
      (p) => p.op === 'INSERT' && p.key?.level === '2.20',
      'keys event after the drop',
    );
    assert.deepEqual(keys.key, { level: '2.20' }, 'the whole row, exact numbers as strings');
    const diff = await waitFor('gauges-diff', (p) => p.op === 'UPDATE', 'diff event after the drop');
    assert.equal(diff.key, null);
    assert.deepEqual([diff.before, diff.after, diff.changed], [{ level: '2.20' }, { level: '3.30' }, ['level']]);
  });
});

/**
 * Every value round-trips exactly from the committed row to the webhook body, for both payload shapes that carry
 * rows (`row`, `diff`). Expectations come from PostgreSQL itself (to_jsonb / ::text in the writer's session),
 * and every received row is fed back into PostgreSQL (jsonb_populate_record) and compared with the stored row.
 *
 * The JSON representation of each type in a row payload (`after`, `before`, `key`):
 *
 * | PostgreSQL type                | JSON                                                                                  |
 * |--------------------------------|---------------------------------------------------------------------------------------|
 * | bigint, numeric                | string, PostgreSQL's text: "9007199254740993", "1.500" (scale kept), "NaN", "Infinity", "-Infinity" |
 * | bigint[], numeric[]            | array of strings, NULL elements as null, nested arrays for more dimensions            |
 * | smallint, integer              | number; int[] → array of numbers                                                      |
 * | real, double precision         | number (shortest exact form); NaN/Infinity as the strings "NaN"/"Infinity"            |
 * | text, varchar, text[]          | string / array of strings (quotes, backslashes, "NULL" text and '' kept; NULL → null) |
 * | bytea                          | string in the writer session's bytea_output: "\\x00ff0a27" (hex, the default)         |
 * | json, jsonb                    | embedded as JSON (jsonb orders keys its own way); numbers keep every digit in the wire text |
 * | timestamp                      | "2026-03-29T01:30:00.123456" (ISO 8601, no zone)                                      |
 * | timestamptz                    | ISO 8601 with the offset of the *writer session's* TimeZone: "2026-01-02T03:04:05.123456+05:30" — same instant whatever the zone |
 * | date                           | "2026-02-28"                                                                          |
 * | interval                       | string in the writer session's IntervalStyle: "1 year 2 mons 3 days 04:05:06.789" (default 'postgres') |
 * | uuid                           | string                                                                                |
 * | boolean                        | true / false                                                                          |
 * | NULL (any type)                | null; the key is always present                                                       |
 *
 * Large values (a row over 8 kB, a 1 MB TOASTed text) arrive whole, also in an UPDATE that does not touch them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { generateSecret, type RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
const secret = generateSecret();

const COLUMNS = [
  'id',
  'big',
  'num',
  'num_fixed',
  'ints',
  'bigs',
  'texts',
  'nums',
  'doc',
  'ts',
  'tstz',
  'd',
  'iv',
  'u',
  'b',
  'bin',
  'f8',
  'txt',
] as const;
const EXACT = new Set(['id', 'big', 'num', 'num_fixed']);
const EXACT_ARRAYS = new Set(['bigs', 'nums']);

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start(secret);
  await db.pool.query(`
    CREATE TABLE vals (
      id bigint PRIMARY KEY, big bigint, num numeric, num_fixed numeric(10,3), ints int[], bigs bigint[], texts text[], nums numeric[],
      doc jsonb, ts timestamp, tstz timestamptz, d date, iv interval, u uuid, b boolean, bin bytea, f8 double precision, txt text)`);
  await applyConfig(db.pool, {
    topics: { 'vals-row': { maxMessageSize: 8 * 1024 * 1024 }, 'vals-diff': { maxMessageSize: 8 * 1024 * 1024 } },
    captures: {
      'vals-row': { table: 'vals', topic: 'vals-row', payload: 'row' },
      'vals-diff': { table: 'vals', topic: 'vals-diff', payload: 'diff' },
    },
    subscriptions: {
      'row-hook': { topic: 'vals-row', protocol: 'http', endpoint: receiver.url, secret },
      'diff-hook': { topic: 'vals-diff', protocol: 'http', endpoint: receiver.url, secret, format: 'raw' },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

/** The change payload of a request (the envelope's body for row-hook, the raw body for diff-hook). */
const payloadOf = (r: ReceivedRequest) => (r.headers['rowcast-subscription'] === 'row-hook' ? r.json.body : r.json);
/** Its raw JSON text, for PostgreSQL to parse without JavaScript's number rounding. */
const rawPayloadSql = (r: ReceivedRequest) =>
  r.headers['rowcast-subscription'] === 'row-hook' ? `($1::jsonb -> 'body')` : `$1::jsonb`;

async function waitFor(sub: 'row-hook' | 'diff-hook', op: string, id: string): Promise<ReceivedRequest> {
  return eventually(
    () =>
      receiver.requests.find((r) => {
        if (r.headers['rowcast-subscription'] !== sub) return false;
        const p = payloadOf(r);
        return p.op === op && p.key?.id === id;
      }),
    `${sub} ${op} of row ${id}`,
    30_000,
  );
}

/**
 * What PostgreSQL renders for each column of row `id`, in a session with the given settings: to_jsonb(col),
 * except bigint/numeric (col::text) and arrays of them (to_jsonb(col::text[])).
 */
async function expectedRow(id: string, settings: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    for (const [k, v] of Object.entries(settings)) await client.query(`SELECT set_config($1, $2, true)`, [k, v]);
    const exprs = COLUMNS.map((c) =>
      EXACT.has(c) ? `to_jsonb(v.${c}::text)` : EXACT_ARRAYS.has(c) ? `to_jsonb(v.${c}::text[])` : `to_jsonb(v.${c})`,
    );
    const { rows } = await client.query(
      `SELECT jsonb_build_array(${exprs.join(', ')})::text AS a FROM vals v WHERE id = $1::bigint`,
      [id],
    );
    await client.query('ROLLBACK');
    const values = JSON.parse(rows[0].a) as unknown[];
    return Object.fromEntries(COLUMNS.map((c, i) => [c, values[i]]));
  } finally {
    client.release();
  }
}

/** Feeds the received row back into PostgreSQL: it must equal the row as stored (and keep numeric scale). */
async function assertRoundTrips(r: ReceivedRequest, side: 'after' | 'before', id: string) {
  const src = rawPayloadSql(r);
  const { rows } = await db.pool.query(
    `SELECT jsonb_populate_record(NULL::vals, ${src} -> '${side}') IS NOT DISTINCT FROM v AS same,
            (jsonb_populate_record(NULL::vals, ${src} -> '${side}')).num::text IS NOT DISTINCT FROM v.num::text AS same_scale,
            (jsonb_populate_record(NULL::vals, ${src} -> '${side}')).nums::text IS NOT DISTINCT FROM v.nums::text AS same_array_scale
       FROM vals v WHERE v.id = $2::bigint`,
    [r.body, id],
  );
  assert.ok(rows[0], `row ${id} is still stored`);
  assert.deepEqual(
    rows[0],
    { same: true, same_scale: true, same_array_scale: true },
    `${side} of row ${id} round-trips through jsonb_populate_record`,
  );
}

/** Inserts in a session with the given settings (SET LOCAL), returning what PostgreSQL renders in that session. */
async function insertWith(sql: string, settings: Record<string, string> = {}) {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    for (const [k, v] of Object.entries(settings)) await client.query(`SELECT set_config($1, $2, true)`, [k, v]);
    await client.query(sql);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

const FULL_ROW = `
  INSERT INTO vals VALUES (
    9007199254740993, -9223372036854775808, 1.500, 1.5,
    '{1,NULL,-2147483648}', '{9223372036854775807,NULL,-9223372036854775808,9007199254740993}',
    ARRAY['he said "hi"', NULL, 'back\\slash', 'NULL', 'comma,brace}', '', 'tab	and
newline'],
    '{1.500,NaN,NULL,Infinity,-Infinity,0.000000000000000000001}',
    '{"ünïcødé": "naïve café 😀 𝄞 中文", "nested": {"emoji": ["👩‍👩‍👧", "🇳🇿"], "n": 123456789012345678901234567890.10, "z": null, "esc": "quote\\" back\\\\ nl\\n"}}',
    '2026-03-29 01:30:00.123456', '2026-01-02 03:04:05.123456+05:30', '2026-02-28',
    '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '\\x00ff0a27'::bytea, 0.1, 'plain')`;

describe('values round-trip exactly into row and diff payloads', () => {
  test('a row with every edge value: INSERT, UPDATE and DELETE, row and diff', async () => {
    const id = '9007199254740993';
    await insertWith(FULL_ROW);
    const expected = await expectedRow(id);
    // What the table above documents, spelled out for the values that matter most.
    assert.equal(expected.big, '-9223372036854775808');
    assert.equal(expected.num, '1.500');
    assert.equal(expected.num_fixed, '1.500');
    assert.deepEqual(expected.bigs, ['9223372036854775807', null, '-9223372036854775808', '9007199254740993']);
    assert.deepEqual(expected.nums, ['1.500', 'NaN', null, 'Infinity', '-Infinity', '0.000000000000000000001']);
    assert.deepEqual(expected.ints, [1, null, -2147483648]);
    assert.equal(expected.bin, '\\x00ff0a27');
    assert.equal(expected.ts, '2026-03-29T01:30:00.123456');
    assert.equal(expected.d, '2026-02-28');
    assert.equal(expected.iv, '1 year 2 mons 3 days 04:05:06.789');

    for (const [sub, side] of [
      ['row-hook', 'after'],
      ['diff-hook', 'after'],
    ] as const) {
      const r = await waitFor(sub, 'INSERT', id);
      assert.equal(r.verified, true);
      const p = payloadOf(r);
      assert.deepEqual(p[side], expected, `${sub}: INSERT ${side} is what PostgreSQL renders`);
      assert.deepEqual(Object.keys(p[side]).sort(), [...COLUMNS].sort(), 'every column is present');
      assert.deepEqual(p.key, { id });
      // The jsonb's 30-digit number keeps every digit in the bytes on the wire (JSON.parse would round it).
      assert.ok(r.body.includes('123456789012345678901234567890.10'), 'nested jsonb number sent with all digits');
      assert.ok(r.body.includes('😀') && r.body.includes('👩‍👩‍👧'), 'emoji sent as UTF-8');
      await assertRoundTrips(r, side, id);
    }

    await db.pool.query(`UPDATE vals SET num = 2.250, nums = '{NaN}', texts = '{}' WHERE id = $1`, [id]);
    const expectedAfterUpdate = await expectedRow(id);
    assert.deepEqual(expectedAfterUpdate.texts, []);
    const rowUpdate = await waitFor('row-hook', 'UPDATE', id);
    assert.deepEqual(payloadOf(rowUpdate).after, expectedAfterUpdate);
    await assertRoundTrips(rowUpdate, 'after', id);
    const diffUpdate = await waitFor('diff-hook', 'UPDATE', id);
    assert.deepEqual(payloadOf(diffUpdate).before, expected);
    assert.deepEqual(payloadOf(diffUpdate).after, expectedAfterUpdate);
    assert.deepEqual([...payloadOf(diffUpdate).changed].sort(), ['num', 'nums', 'texts']);
    await assertRoundTrips(diffUpdate, 'after', id);

    await db.pool.query(`DELETE FROM vals WHERE id = $1`, [id]);
    for (const sub of ['row-hook', 'diff-hook'] as const) {
      const p = payloadOf(await waitFor(sub, 'DELETE', id));
      assert.deepEqual(p.before, expectedAfterUpdate, `${sub}: DELETE before`);
      assert.equal(p.after, null);
    }
  });

  test('numeric NaN, Infinity and -Infinity, and bigint -2^63 as a key', async () => {
    await db.pool.query(
      `INSERT INTO vals (id, num, num_fixed, f8) VALUES (-9223372036854775808, 'NaN', 'NaN', 'NaN'), (2, 'Infinity', NULL, 'Infinity'), (3, '-Infinity', NULL, '-Infinity')`,
    );
    // numeric(p,s) holds NaN but not ±Infinity (PostgreSQL refuses it), so num_fixed is NULL on those rows.
    const cases = [
      ['-9223372036854775808', 'NaN'],
      ['2', 'Infinity'],
      ['3', '-Infinity'],
    ] as const;
    for (const [id, text] of cases) {
      const expected = await expectedRow(id);
      assert.equal(expected.num, text);
      assert.equal(expected.f8, text, 'double precision NaN/Infinity are strings too (JSON has no such numbers)');
      for (const sub of ['row-hook', 'diff-hook'] as const) {
        const r = await waitFor(sub, 'INSERT', id);
        assert.deepEqual(payloadOf(r).after, expected);
        assert.deepEqual(payloadOf(r).key, { id });
        await assertRoundTrips(r, 'after', id);
      }
    }
  });

  test('multi-dimensional and non-1-based arrays of exact numbers: nested arrays of strings', async () => {
    await db.pool.query(
      `INSERT INTO vals (id, nums, bigs, ints) VALUES (5, '{{1.50,NULL},{NaN,-Infinity}}', '[0:1]={9223372036854775807,-1}', '{{1,2},{3,4}}')`,
    );
    const expected = await expectedRow('5');
    assert.deepEqual(expected.nums, [
      ['1.50', null],
      ['NaN', '-Infinity'],
    ]);
    assert.deepEqual(expected.bigs, ['9223372036854775807', '-1'], 'array bounds are not part of the JSON');
    for (const sub of ['row-hook', 'diff-hook'] as const) {
      const r = await waitFor(sub, 'INSERT', '5');
      assert.deepEqual(payloadOf(r).after, expected);
    }
  });

  test('NULL in every column: every key present with null', async () => {
    await db.pool.query(`INSERT INTO vals (id) VALUES (4)`);
    const expected = await expectedRow('4');
    for (const c of COLUMNS) if (c !== 'id') assert.equal(expected[c], null);
    for (const sub of ['row-hook', 'diff-hook'] as const) {
      const r = await waitFor(sub, 'INSERT', '4');
      assert.deepEqual(payloadOf(r).after, expected);
      await assertRoundTrips(r, 'after', '4');
    }
    await db.pool.query(`UPDATE vals SET b = false WHERE id = 4`);
    const diff = payloadOf(await waitFor('diff-hook', 'UPDATE', '4'));
    assert.deepEqual(diff.changed, ['b']);
    assert.equal(diff.before.b, null);
    assert.equal(diff.after.b, false);
  });

  test('timestamptz in several zones: rendered with the writer session offset, the same instant', async () => {
    const zones = ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham', 'America/Los_Angeles'];
    for (const [i, zone] of zones.entries()) {
      const id = String(100 + i);
      // The literal carries its own zone; the session zone only changes how it is rendered.
      await insertWith(
        `INSERT INTO vals (id, tstz, ts) VALUES (${id}, '2026-03-08 10:11:12.654321+00', '2026-03-08 10:11:12.654321')`,
        { TimeZone: zone },
      );
      const expected = await expectedRow(id, { TimeZone: zone });
      for (const sub of ['row-hook', 'diff-hook'] as const) {
        const r = await waitFor(sub, 'INSERT', id);
        const got = payloadOf(r).after;
        assert.equal(got.tstz, expected.tstz, `${zone}: what to_jsonb renders in the writer's session`);
        assert.equal(new Date(got.tstz).toISOString(), '2026-03-08T10:11:12.654Z', `${zone}: the same instant`);
        assert.equal(got.ts, '2026-03-08T10:11:12.654321', 'timestamp without zone never changes');
        await assertRoundTrips(r, 'after', id);
      }
    }
    const offsets = await Promise.all(
      zones.map(async (_z, i) => payloadOf(await waitFor('row-hook', 'INSERT', String(100 + i))).after.tstz as string),
    );
    assert.deepEqual(
      offsets.map((t) => t.slice(-6)),
      ['+00:00', '+05:30', '-02:30', '+13:45', '-07:00'],
      'offsets follow the writer session TimeZone',
    );
  });

  test('interval and bytea follow the writer session IntervalStyle and bytea_output (same value)', async () => {
    await insertWith(
      `INSERT INTO vals (id, iv, bin) VALUES (200, '1 year 2 mons 3 days 04:05:06.789', '\\x00ff0a27'::bytea)`,
      { IntervalStyle: 'iso_8601', bytea_output: 'escape' },
    );
    const expected = await expectedRow('200', { IntervalStyle: 'iso_8601', bytea_output: 'escape' });
    assert.equal(expected.iv, 'P1Y2M3DT4H5M6.789S');
    for (const sub of ['row-hook', 'diff-hook'] as const) {
      const r = await waitFor(sub, 'INSERT', '200');
      assert.deepEqual(payloadOf(r).after, expected);
      await assertRoundTrips(r, 'after', '200');
    }
  });

  test('a row over 8,000 bytes and a 1 MB TOASTed text arrive whole, also when an UPDATE leaves them untouched', async () => {
    await db.pool.query(`
      INSERT INTO vals (id, txt, doc, texts) VALUES
        (300, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g),
              (SELECT jsonb_object_agg('k' || g, md5(g::text)) FROM generate_series(1, 100) g),
              (SELECT array_agg(md5(g::text)) FROM generate_series(1, 100) g)),
        (301, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g), NULL, NULL)`);
    const { rows } = await db.pool.query(
      `SELECT id::text, pg_column_size(v.*) AS row_bytes, octet_length(txt) AS len, md5(txt) AS md5, pg_column_size(txt) AS stored FROM vals v WHERE id IN (300, 301) ORDER BY id`,
    );
    assert.ok(rows[0].row_bytes > 8000, `row 300 is ${rows[0].row_bytes} bytes`);
    assert.equal(rows[1].len, 1024 * 1024);
    const toast = await db.pool.query(
      `SELECT reltoastrelid::regclass::text AS rel FROM pg_class WHERE oid = 'vals'::regclass`,
    );
    const chunks = await db.pool.query(`SELECT count(*)::int AS n FROM ${toast.rows[0].rel}`);
    assert.ok(
      chunks.rows[0].n > 100,
      `the 1 MB value is stored out of line in ${toast.rows[0].rel} (${chunks.rows[0].n} chunks, ${rows[1].stored} bytes)`,
    );
    for (const { id, md5, len } of rows) {
      const expected = await expectedRow(id);
      for (const sub of ['row-hook', 'diff-hook'] as const) {
        const r = await waitFor(sub, 'INSERT', id);
        const got = payloadOf(r).after;
        assert.equal(got.txt.length, len);
        assert.equal(createHash('md5').update(got.txt).digest('hex'), md5);
        assert.deepEqual(got, expected);
        await assertRoundTrips(r, 'after', id);
      }
    }
    // An UPDATE that does not touch the TOASTed column: the trigger still sees (and sends) the whole value.
    await db.pool.query(`UPDATE vals SET b = true WHERE id = 301`);
    const diff = await waitFor('diff-hook', 'UPDATE', '301');
    assert.deepEqual(payloadOf(diff).changed, ['b']);
    assert.equal(createHash('md5').update(payloadOf(diff).after.txt).digest('hex'), rows[1].md5);
    assert.equal(createHash('md5').update(payloadOf(diff).before.txt).digest('hex'), rows[1].md5);
    const row = await waitFor('row-hook', 'UPDATE', '301');
    assert.equal(createHash('md5').update(payloadOf(row).after.txt).digest('hex'), rows[1].md5);
    await assertRoundTrips(row, 'after', '301');
  });
});

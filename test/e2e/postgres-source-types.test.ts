import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { parseConfig } from '../../src/admin/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { type RowcastRuntime, startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';

/*
 * User-defined types on a PostgreSQL source (a second, embedded server): enums, composites, ranges, domains and
 * arrays of each arrive as the store's trigger capture writes the same row with the same types (to_jsonb), which
 * is the reference. The same types and table exist in the store, where the trigger capture writes its events.
 */

let source: EmbeddedDatabase;
let src: pg.Client;
let store: TestDatabase;
let runtime: RowcastRuntime | null = null;

/** The same DDL on both servers: the composite `item` had a field dropped, as a real one might have. */
const TYPES = [
  `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, "very"')`,
  `CREATE TYPE tag AS (label text, weight int)`,
  `CREATE TYPE item AS (gone int, sku text, qty bigint, price numeric, at timestamptz, meta jsonb, flags boolean[], mood mood, tag tag)`,
  `ALTER TYPE item DROP ATTRIBUTE gone`,
  `CREATE DOMAIN positive AS bigint CHECK (VALUE > 0)`,
  `CREATE TABLE kinds (id bigint PRIMARY KEY, mood mood, moods mood[], item item, items item[], span int4range, spans int4range[],
     stamps tstzrange[], num_spans numrange[], dom positive, doms positive[], tags tag[], grid mood[][], nothing item[])`,
];

const ROW = `(1, 'happy, "very"', ARRAY['sad', NULL, 'happy, "very"']::mood[],
  ROW('a,b', 9007199254740993, 12.50, '2024-01-02 03:04:05.5+00', '{"k": [1, "x"]}', '{t,NULL,f}', 'ok', ROW('l "q"', 3))::item,
  ARRAY[ROW('x', 1, 0.1, NULL, '{}', NULL, 'sad', NULL)::item, NULL, ROW('', NULL, NULL, NULL, 'null', NULL, NULL, ROW(NULL, NULL))::item],
  '[1,5)', ARRAY['[1,5)'::int4range, 'empty', NULL, '(,3]'],
  ARRAY[tstzrange('2024-01-01 00:00+00', '2024-02-01 00:00+00')], ARRAY['[1.5,2.25]'::numrange],
  7, ARRAY[1, 9223372036854775807]::positive[], ARRAY[ROW('a\\b', 1)::tag, ROW('}{', -2)::tag], '{{sad,ok},{ok,sad}}',
  '{}')`;

before(async () => {
  source = await startEmbeddedPostgres();
  src = new pg.Client({ connectionString: source.url });
  await src.connect();
  store = await createTestDatabase();
  for (const sql of TYPES) {
    await src.query(sql);
    await store.pool.query(sql);
  }
  process.env.ROWCAST_TEST_SOURCE_URL = source.url;
  const config: RowcastConfigInput = {
    sources: { shop: { kind: 'postgres', url: { env: 'ROWCAST_TEST_SOURCE_URL' } } },
    topics: { changes: {} },
    captures: {
      kinds: { source: 'shop', table: 'kinds', topic: 'changes', payload: 'diff' },
      kinds_trigger: { table: 'kinds', topic: 'changes', payload: 'diff' },
    },
  };
  await applyConfig(store.pool, config);
  const parsed = parseConfig(config, 'test config');
  runtime = await startRowcast({
    databaseUrl: store.url,
    runtime: FAST_RUNTIME,
    functions: parsed.functions,
    sources: parsed.sources,
    logger: createLogger('silent'),
  });
});

after(async () => {
  await runtime?.stop();
  await store?.drop();
  await src?.end();
  await source?.stop();
});

async function byCapture(op: string): Promise<Record<string, { before: any; after: any; changed: string[] | null }>> {
  return eventually(async () => {
    const { rows } = await store.pool.query<{ capture: string; before: any; after: any; changed: string[] | null }>(
      `SELECT capture, before, after, changed FROM rowcast.events WHERE op = $1 ORDER BY capture`,
      [op],
    );
    return rows.length >= 2 ? Object.fromEntries(rows.map((r) => [r.capture, r])) : null;
  }, `the ${op} through both captures`);
}

describe('PostgreSQL source: user-defined types', () => {
  test('enums, composites, ranges, domains and arrays of them arrive as the trigger capture writes them', async () => {
    await src.query(`INSERT INTO kinds VALUES ${ROW}`);
    await store.pool.query(`INSERT INTO kinds VALUES ${ROW}`);
    const inserted = await byCapture('INSERT');
    assert.deepEqual(inserted.kinds!.after, inserted.kinds_trigger!.after, 'source = trigger capture');
    // As jsonb in the store too, where numbers keep every digit (9007199254740993 is not a double).
    const { rows: same } = await store.pool.query<{ same: boolean }>(
      `SELECT (SELECT after FROM rowcast.events WHERE capture = 'kinds' AND op = 'INSERT')
            = (SELECT after FROM rowcast.events WHERE capture = 'kinds_trigger' AND op = 'INSERT') AS same`,
    );
    assert.equal(same[0]!.same, true, 'the same jsonb, digit for digit');
    const after = inserted.kinds!.after;
    // What the trigger capture gives, spelled out (so that a change of both would show).
    assert.deepEqual(after.moods, ['sad', null, 'happy, "very"']);
    assert.deepEqual(after.item, {
      sku: 'a,b',
      qty: 2 ** 53, // 9007199254740993 as a double: the store holds every digit (asserted above)
      price: 12.5,
      at: '2024-01-02T03:04:05.5+00:00',
      meta: { k: [1, 'x'] },
      flags: [true, null, false],
      mood: 'ok',
      tag: { label: 'l "q"', weight: 3 },
    });
    assert.equal(after.items.length, 3);
    assert.equal(after.items[1], null);
    assert.deepEqual(after.items[2], {
      sku: '',
      qty: null,
      price: null,
      at: null,
      meta: null,
      flags: null,
      mood: null,
      tag: { label: null, weight: null },
    });
    assert.deepEqual(after.spans, ['[1,5)', 'empty', null, '(,4)']);
    assert.deepEqual(after.num_spans, ['[1.5,2.25]']);
    assert.deepEqual(after.tags, [
      { label: 'a\\b', weight: 1 },
      { label: '}{', weight: -2 },
    ]);
    assert.deepEqual(after.grid, [
      ['sad', 'ok'],
      ['ok', 'sad'],
    ]);
    assert.deepEqual(after.nothing, []);

    // An UPDATE: before and after images and the changed columns agree too.
    const update = `UPDATE kinds SET moods = ARRAY['ok']::mood[], item = NULL, spans = '{}' WHERE id = 1`;
    await src.query(update);
    await store.pool.query(update);
    const updated = await byCapture('UPDATE');
    assert.deepEqual(updated.kinds!.before, updated.kinds_trigger!.before, 'before: source = trigger capture');
    assert.deepEqual(updated.kinds!.after, updated.kinds_trigger!.after, 'after: source = trigger capture');
    // The same columns (the trigger capture lists them in jsonb's key order, the source in the table's).
    assert.deepEqual(
      [...updated.kinds!.changed!].sort(),
      [...updated.kinds_trigger!.changed!].sort(),
      'changed: source = trigger capture',
    );
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  parseConfig,
  type RowcastConfigInput,
  getStatus,
  type RowcastRuntime,
  startRowcast,
  type EmbeddedDatabase,
  startEmbeddedPostgres,
} from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { PostgresSourceReader } from '../../src/capture/postgres/postgres-reader.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { patient } from '../support/patience.js';

/*
 * A PostgreSQL source on a second server: a throwaway embedded PostgreSQL (wal_level = logical) holds the captured
 * table; the store is the test database on the tests' own server. Events are read from rowcast.events.
 */

let source: EmbeddedDatabase;
let src: pg.Client;
let store: TestDatabase;
let runtime: RowcastRuntime | null = null;
let config: RowcastConfigInput;

/** What exists on the source besides the catalog: to show that rowcast writes nothing else there. */
async function sourceObjects() {
  const { rows } = await src.query<{ what: string }>(
    `SELECT 'class ' || n.nspname::text || '.' || c.relname || ' ' || c.relreplident::text AS what FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     UNION ALL SELECT 'proc ' || p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
     UNION ALL SELECT 'schema ' || nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')
     UNION ALL SELECT 'trigger ' || tgname::text FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT 'publication ' || pubname::text FROM pg_publication
     UNION ALL SELECT 'slot ' || slot_name::text FROM pg_replication_slots
     ORDER BY 1`,
  );
  return rows.map((r) => r.what);
}

async function start(): Promise<void> {
  const parsed = parseConfig(config, 'test config');
  runtime = await startRowcast({
    databaseUrl: store.url,
    runtime: FAST_RUNTIME,
    functions: parsed.functions,
    sources: parsed.sources,
    logger: createLogger('silent'),
  });
}

async function events() {
  const { rows } = await store.pool.query<{
    id: string;
    op: string;
    key: any;
    before: any;
    after: any;
    changed: string[] | null;
    source: any;
  }>('SELECT e.id::text AS id, op, key, before, after, changed, source FROM rowcast.events e ORDER BY e.id');
  return rows;
}

before(async () => {
  source = await startEmbeddedPostgres();
  src = new pg.Client({ connectionString: source.url });
  await src.connect();
  await src.query(
    `CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(10,2), qty int, paid boolean, at timestamptz, doc jsonb)`,
  );
  store = await createTestDatabase();
  config = {
    sources: { shop: { kind: 'postgres', url: { env: 'ROWCAST_TEST_SOURCE_URL' } } },
    topics: { changes: {} },
    captures: { orders: { source: 'shop', table: 'orders', topic: 'changes', payload: 'diff' } },
  };
  process.env.ROWCAST_TEST_SOURCE_URL = source.url;
});

after(async () => {
  await runtime?.stop();
  await store?.drop();
  await src?.end();
  await source?.stop();
});

describe('PostgreSQL source on another server', () => {
  test('apply makes only the publication, the slot and REPLICA IDENTITY FULL on the source', async () => {
    const beforeApply = await sourceObjects();
    await applyConfig(store.pool, config);
    const afterApply = await sourceObjects();
    const added = afterApply.filter((x) => !beforeApply.includes(x));
    const removed = beforeApply.filter((x) => !afterApply.includes(x));
    assert.deepEqual(removed, ['class public.orders d']);
    assert.deepEqual(added, ['class public.orders f', 'publication rowcast_shop', 'slot rowcast_shop']);
    assert.deepEqual(
      (await getStatus(store.pool)).captures.map((c) => [c.name, c.table, c.mode]),
      [['orders', 'public.orders', 'pgoutput']],
    );
    // Applying again changes nothing.
    await applyConfig(store.pool, config);
    assert.deepEqual(await sourceObjects(), afterApply);
  });

  test('INSERT, UPDATE and DELETE arrive as events naming their source; a rollback gives nothing', async () => {
    await start();
    await src.query(
      `INSERT INTO orders VALUES (1, 'new', 10.5, 3, false, '2024-01-02 03:04:05.678901+00', '{"a": [1, 2]}')`,
    );
    await src.query('BEGIN');
    await src.query(`INSERT INTO orders VALUES (99, 'rolled back', 1, 1, false, now(), null)`);
    await src.query('ROLLBACK');
    await src.query(`UPDATE orders SET status = 'paid', paid = true WHERE id = 1`);
    await src.query('DELETE FROM orders WHERE id = 1');
    const rows = await eventually(async () => ((await events()).length >= 3 ? events() : null), 'three events');
    const row = {
      id: '1',
      status: 'new',
      total: '10.50',
      qty: 3,
      paid: false,
      at: '2024-01-02T03:04:05.678901+00:00',
      doc: { a: [1, 2] },
    };
    const paid = { ...row, status: 'paid', paid: true };
    assert.deepEqual(
      rows.map((e) => [e.op, e.key, e.before, e.after, e.changed]),
      [
        ['INSERT', { id: '1' }, null, row, null],
        ['UPDATE', { id: '1' }, row, paid, ['status', 'paid']],
        ['DELETE', { id: '1' }, paid, null, null],
      ],
    );
    for (const e of rows) {
      assert.deepEqual(
        { ...e.source, position: undefined },
        {
          capture: 'orders',
          kind: 'postgres',
          server: 'shop',
          database: 'postgres',
          schema: 'public',
          table: 'orders',
          position: undefined,
        },
      );
      assert.match(e.source.position.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    }
    assert.equal(new Set(rows.map((e) => e.source.position.lsn)).size, 3, 'one transaction each');
    // The position is stored in the store, not on the source.
    const { rows: progress } = await store.pool.query(
      `SELECT position ->> 'lsn' AS lsn FROM rowcast.source_progress WHERE source = 'shop'`,
    );
    assert.ok(progress[0]);
  });

  test('a restart resumes where it stopped: changes made meanwhile arrive once each', async () => {
    const already = (await events()).length;
    await runtime!.stop();
    runtime = null;
    for (let i = 10; i < 60; i++) await src.query(`INSERT INTO orders (id, status) VALUES ($1, 'offline')`, [i]);
    await src.query(`UPDATE orders SET status = 'bulk' WHERE id >= 10`);
    // A last change after them: once it is an event, everything before it has been read (one reader, commit order).
    await src.query(`INSERT INTO orders (id, status) VALUES (90001, 'sentinel')`);
    await start();
    const rows = await eventually(
      async () => ((await events()).some((e) => e.key.id === '90001') ? events() : null),
      'the changes made while stopped',
    );
    const fresh = rows.slice(already, -1);
    assert.equal(fresh.length, 100, 'each change once');
    assert.deepEqual(
      fresh.slice(0, 50).map((e) => [e.op, e.key.id]),
      Array.from({ length: 50 }, (_, i) => ['INSERT', String(i + 10)]),
    );
    assert.ok(fresh.slice(50).every((e) => e.op === 'UPDATE' && e.after.status === 'bulk'));
    assert.equal(rows.at(-1)!.key.id, '90001', 'the sentinel last');
  });

  test('the replication connection cut while changes stream: reading resumes, each change once', async () => {
    const already = (await events()).length;
    for (let i = 1000; i < 1200; i++) {
      await src.query(`INSERT INTO orders (id, status) VALUES ($1, 'cut')`, [i]);
      if (i === 1100)
        await src.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'rowcast_shop' AND active_pid IS NOT NULL`,
        );
    }
    await src.query(`INSERT INTO orders (id, status) VALUES (90002, 'sentinel')`);
    const rows = await eventually(
      async () => ((await events()).some((e) => e.key.id === '90002') ? events() : null),
      'the 200 inserts and the sentinel after them',
      45_000,
    );
    const fresh = rows.slice(already);
    assert.deepEqual(
      fresh.map((e) => e.key.id),
      [...Array.from({ length: 200 }, (_, i) => String(1000 + i)), '90002'],
    );
  });

  test("arrays, json and jsonb arrive as the store's trigger and logical captures write the same row", async () => {
    const columns = `id bigint PRIMARY KEY, ints int[], texts text[], grid int[][], nums numeric[], bigs bigint[], flags boolean[], stamps timestamptz[],
      docs jsonb[], doc json, tags varchar(10)[], empty int[], floats float8[]`;
    await src.query(`CREATE TABLE shapes (${columns})`);
    await store.pool.query(`CREATE TABLE shapes (${columns})`);
    await runtime?.stop();
    runtime = null;
    config = {
      ...config,
      captures: {
        ...config.captures,
        shapes: { source: 'shop', table: 'shapes', topic: 'changes', payload: 'row' },
        shapes_trigger: { table: 'shapes', topic: 'changes', payload: 'row' },
        shapes_logical: { table: 'shapes', topic: 'changes', payload: 'row', mode: 'logical' },
      },
    };
    await applyConfig(store.pool, config);
    await start();
    const row = `(7, '{1,NULL,-3}', ARRAY['a b', NULL, '"quoted"', 'NULL', 'back\\slash', '{braces}', ''], '{{1,2},{3,4}}', '{1.50,NaN,-0.001}',
      '{9007199254740993,NULL}', '{t,f}', ARRAY['2024-01-02 03:04:05.678901+00'::timestamptz], ARRAY['{"a": [1, "x"]}'::jsonb, 'null'::jsonb, NULL],
      '{"k": {"n": 1.0}}', '{x,y}', '{}', '{1.5,Infinity}')`;
    await src.query(`INSERT INTO shapes VALUES ${row}`);
    await store.pool.query(`INSERT INTO shapes VALUES ${row}`);
    const byCapture = await eventually(async () => {
      const { rows } = await store.pool.query<{ capture: string; after: unknown }>(
        `SELECT capture, after FROM rowcast.events WHERE capture LIKE 'shapes%' ORDER BY capture`,
      );
      return rows.length >= 3 ? Object.fromEntries(rows.map((r) => [r.capture, r.after])) : null;
    }, 'the row through the three captures');
    assert.deepEqual(byCapture.shapes, byCapture.shapes_trigger, 'source = trigger capture');
    assert.deepEqual(byCapture.shapes, byCapture.shapes_logical, 'source = logical capture');
    const after = byCapture.shapes as Record<string, unknown>;
    assert.deepEqual(after.texts, ['a b', null, '"quoted"', 'NULL', 'back\\slash', '{braces}', '']);
    assert.deepEqual(after.grid, [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(after.nums, ['1.50', 'NaN', '-0.001']);
  });

  test(
    'a transaction of 200,000 rows is staged in the store chunk by chunk and arrives whole, once',
    { timeout: patient(600_000) },
    async () => {
      await runtime?.stop();
      runtime = null;
      await src.query('CREATE TABLE bulk (id int PRIMARY KEY, label text)');
      config = {
        ...config,
        captures: {
          ...config.captures,
          bulk: { source: 'shop', table: 'bulk', topic: 'changes', payload: 'keys', operations: ['INSERT'] },
        },
      };
      await applyConfig(store.pool, config);
      const parsed = parseConfig(config, 'test config');
      const reader = new PostgresSourceReader(
        store.pool,
        store.url,
        'shop',
        parsed.sources!.shop as any,
        createLogger('silent'),
        () => {},
        undefined,
        { chunkRows: 2000 },
      );
      reader.start();
      try {
        await src.query(`INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 200000) g`);
        await src.query(`INSERT INTO bulk VALUES (-1, 'after')`);
        const count = async () =>
          (
            await store.pool.query<{ n: number; ids: number }>(
              `SELECT count(*)::int AS n, count(DISTINCT key ->> 'id')::int AS ids FROM rowcast.events WHERE capture = 'bulk'`,
            )
          ).rows[0]!;
        await eventually(async () => (await count()).n >= 200_001, 'the 200,000 rows and the row after them', 540_000);
        assert.deepEqual(await count(), { n: 200_001, ids: 200_001 }, 'every row once');
        assert.equal(reader.stats.staged, 200_000, 'the large transaction went through the staging table');
        assert.ok(reader.stats.peakHeld <= 2000, `at most a chunk held in memory (held ${reader.stats.peakHeld})`);
        assert.equal(
          (await store.pool.query(`SELECT count(*)::int AS n FROM rowcast.source_staging WHERE source = 'shop'`))
            .rows[0].n,
          0,
          'staging emptied at the promotion',
        );
      } finally {
        await reader.stop();
      }
    },
  );

  test('apply says exactly what a source without wal_level = logical needs', async (t) => {
    const url = process.env.ROWCAST_TEST_REPLICA_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
    } catch {
      return t.skip(`no PostgreSQL at ${url}`);
    }
    const walLevel = (await c.query<{ w: string }>(`SELECT current_setting('wal_level') AS w`)).rows[0]!.w;
    await c.end();
    if (walLevel === 'logical') return t.skip('that server has wal_level = logical');
    const other = await createTestDatabase();
    try {
      process.env.ROWCAST_TEST_OTHER_URL = url;
      await assert.rejects(
        applyConfig(other.pool, {
          ...config,
          sources: { other: { kind: 'postgres', url: { env: 'ROWCAST_TEST_OTHER_URL' } } },
          captures: { o: { source: 'other', table: 'orders', topic: 'changes' } },
        }),
        (err: Error & { problems?: string[] }) => {
          assert.ok(
            err.problems?.some((p) =>
              p.includes(`sources.other: the server has wal_level = ${walLevel}; set wal_level = logical`),
            ),
            JSON.stringify(err.problems),
          );
          assert.ok(!JSON.stringify(err.problems).includes('127.0.0.1'), 'the URL is not echoed');
          return true;
        },
      );
    } finally {
      await other.drop();
    }
  });

  test('stop returns while the source server does not answer', async () => {
    // A source server that stalls (stopped, not gone: its sockets stay open) must not hold the process's shutdown.
    if (!runtime) await start();
    await src.query(`INSERT INTO orders (id, status) VALUES (90100, 'before the stall')`);
    await eventually(
      async () => (await events()).some((e) => e.after?.id === '90100') || null,
      'the change before the stall',
    );
    const { rows } = await src.query(`SELECT current_setting('data_directory') AS dir`);
    const postmaster = Number(readFileSync(join(rows[0].dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    const pids = [postmaster, ...children.map(Number)];
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      const outcome = await Promise.race([
        runtime!.stop().then(() => 'stopped'),
        delay(20_000).then(() => 'still stopping after 20 s'),
      ]);
      assert.equal(outcome, 'stopped');
      runtime = null;
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
  });

  test('without captures left, apply drops the slot and the publication on the source', async () => {
    await runtime?.stop();
    runtime = null;
    await applyConfig(store.pool, { ...config, captures: {} });
    const left = await sourceObjects();
    assert.ok(!left.some((x) => x.startsWith('slot ') || x.startsWith('publication ')), left.join(', '));
    assert.equal((await store.pool.query(`SELECT 1 FROM rowcast.source_progress WHERE source = 'shop'`)).rowCount, 0);
  });
});

import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { getBackfill, runBackfill } from '../../src/capture/backfill.js';
import {
  parseConfig,
  type RowcastConfigInput,
  type RowcastRuntime,
  startRowcast,
  type EmbeddedDatabase,
  startEmbeddedPostgres,
} from '../../src/index.js';
import type { SourceConfig } from '../../src/config/source-schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { MARIADB, mariadbUnavailable } from '../support/mysql-faults.js';

/*
 * Backfills of other servers' tables: a second (embedded) PostgreSQL read by logical replication, and the
 * machine's MariaDB read from its binlog. The READ events reach the store through each source's reader, in commit
 * order with the table's changes; the events are read from rowcast.events in id order (the order they are routed
 * and delivered in).
 */

const ROWS = 200;

interface EventRow {
  id: string;
  op: string;
  key: { id: number | string };
  after: Record<string, any> | null;
}

/** A store with a rowcast process reading one source. */
class Store {
  db!: TestDatabase;
  runtime: RowcastRuntime | null = null;
  sources!: Record<string, SourceConfig>;

  async setUp(config: RowcastConfigInput): Promise<void> {
    this.db = await createTestDatabase();
    await applyConfig(this.db.pool, config);
    const parsed = parseConfig(config, 'test config');
    this.sources = parsed.sources;
    this.runtime = await startRowcast({
      databaseUrl: this.db.url,
      runtime: FAST_RUNTIME,
      functions: parsed.functions,
      sources: parsed.sources,
      logger: createLogger('silent'),
    });
  }

  async tearDown(): Promise<void> {
    await this.runtime?.stop();
    await this.db?.drop();
  }

  async events(op?: string): Promise<EventRow[]> {
    const { rows } = await this.db.pool.query<EventRow>(
      `SELECT e.id::text AS id, op, key, after FROM rowcast.events e WHERE $1::text IS NULL OR op = $1 ORDER BY e.id`,
      [op ?? null],
    );
    return rows;
  }

  clear = () => this.db.pool.query('DELETE FROM rowcast.events');
}

/** Per key, v never goes down along the events: a row is never delivered older after newer. */
function assertNeverOlder(rows: EventRow[]) {
  const seen = new Map<string, number>();
  for (const e of rows) {
    if (!e.after) continue;
    const id = String(e.after.id);
    const v = Number(e.after.v);
    const prior = seen.get(id);
    assert.ok(
      prior === undefined || v >= prior,
      `row ${id}: v ${v} delivered after v ${prior} (event ${e.id}, ${e.op})`,
    );
    seen.set(id, v);
  }
}

/** Runs a writer bumping v of random rows while a backfill of batch 20 runs; returns the number of updates. */
async function withWriter(update: (id: number) => Promise<unknown>, backfill: () => Promise<unknown>): Promise<number> {
  let stop = false;
  const writer = (async () => {
    let n = 0;
    while (!stop) {
      await update(1 + Math.floor(Math.random() * ROWS));
      n++;
    }
    return n;
  })();
  await backfill().finally(() => (stop = true));
  return writer;
}

/**
 * A backfill of batch 20 while `update` bumps v of random rows (the source's writer): every READ and UPDATE event
 * arrives, and no row is ever delivered older after newer.
 */
async function backfillWhileUpdating(store: Store, update: (id: number) => Promise<unknown>): Promise<void> {
  await store.clear();
  const updates = await withWriter(update, () =>
    runBackfill(store.db.pool, 'items', {
      sources: store.sources,
      batch: 20,
      restart: true,
      onProgress: () => new Promise((r) => setTimeout(r, 5)),
    }),
  );
  const rows = await eventually(
    async () => {
      const r = await store.events();
      return r.filter((e) => e.op === 'READ').length === ROWS && r.filter((e) => e.op === 'UPDATE').length === updates
        ? r
        : null;
    },
    'every READ and UPDATE event',
    60_000,
  );
  assert.ok(updates > 0);
  assertNeverOlder(rows);
}

/** A backfill of batch 50 killed after its second batch, left 'running' as a killed process leaves it. */
async function killedBackfill(store: Store): Promise<void> {
  await store.clear();
  let batches = 0;
  await assert.rejects(
    runBackfill(store.db.pool, 'items', {
      sources: store.sources,
      batch: 50,
      restart: true,
      onProgress: () => {
        if (++batches === 2) throw new Error('killed');
      },
    }),
    /killed/,
  );
  await store.db.pool.query(`UPDATE rowcast.backfills SET state = 'running' WHERE capture = 'items'`);
}

/** Every row's READ event, once each and in key order. */
async function assertEveryReadInOrder(store: Store, timeoutMs?: number): Promise<void> {
  const ids = (
    await eventually(
      async () => ((await store.events('READ')).length === ROWS ? store.events('READ') : null),
      'every READ event',
      timeoutMs,
    )
  ).map((e) => Number(e.key.id));
  assert.deepEqual(
    ids,
    Array.from({ length: ROWS }, (_, i) => i + 1),
  );
}

describe('backfill of a PostgreSQL source on another server', () => {
  let source: EmbeddedDatabase;
  let src: pg.Client;
  const store = new Store();

  before(async () => {
    source = await startEmbeddedPostgres();
    src = new pg.Client({ connectionString: source.url });
    await src.connect();
    await src.query(`CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, n numeric(12,3), at timestamptz, ts timestamp, doc jsonb,
                       flag boolean, f float8, arr int[], d date, u uuid, ip inet, note text)`);
    await src.query(`INSERT INTO items (id, note) SELECT i, 'row ' || i FROM generate_series(2, ${ROWS}) AS i`);
    await store.setUp({
      sources: { shop: { kind: 'postgres', url: source.url } },
      topics: { items: {} },
      captures: { items: { source: 'shop', table: 'items', topic: 'items', payload: 'row' } },
    });
  });

  after(async () => {
    await store.tearDown();
    await src?.end();
    await source?.stop();
  });

  test("every row once as READ, in key order; a READ's values equal the INSERT's of the same row; nothing stored on the source", async () => {
    await src.query(`INSERT INTO items VALUES (1, 0, 12345.678, '2024-01-02 03:04:05.123456+02', '2024-01-02 03:04:05.5', '{"a": [1, 2.50], "b": null}',
                       true, 0.1, '{1,2,NULL}', '2024-02-29', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.5', 'héllo')`);
    const [inserted] = await eventually(
      async () => ((await store.events('INSERT')).length ? store.events('INSERT') : null),
      'the INSERT event',
    );
    const tables = (
      await src.query(
        `SELECT count(*)::int AS n FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`,
      )
    ).rows[0].n;
    const seen: number[] = [];
    const done = await runBackfill(store.db.pool, 'items', {
      sources: store.sources,
      batch: 64,
      onProgress: (p) => seen.push(p.rowsSent),
    });
    assert.equal(done.state, 'done');
    assert.equal(done.rowsSent, ROWS);
    assert.equal(done.rowsTotal, ROWS);
    assert.deepEqual(seen, [64, 128, 192, 200, 200]);
    const reads = await eventually(async () => {
      const r = await store.events('READ');
      return r.length === ROWS ? r : null;
    }, 'every READ event');
    assert.deepEqual(
      reads.map((e) => Number(e.key.id)),
      Array.from({ length: ROWS }, (_, i) => i + 1),
    );
    assert.deepEqual(reads[0]!.after, inserted!.after);
    assert.equal(inserted!.after!.n, '12345.678');
    assert.equal(inserted!.after!.flag, true);
    assert.equal(inserted!.after!.ip, '192.168.1.5');
    // Only the WAL carried the batches: the source has no table more than before.
    assert.equal(
      (
        await src.query(
          `SELECT count(*)::int AS n FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`,
        )
      ).rows[0].n,
      tables,
    );
  });

  test('rows updated during the backfill are never delivered older after newer', () =>
    backfillWhileUpdating(store, (id) => src.query(`UPDATE items SET v = v + 1 WHERE id = $1`, [id])));

  test('resumes after a kill between batches: every row sent, the resumed part once', async () => {
    await killedBackfill(store);
    assert.equal((await getBackfill(store.db.pool, 'items'))!.rowsSent, 100);
    const done = await runBackfill(store.db.pool, 'items', { sources: store.sources });
    assert.equal(done.state, 'done');
    assert.equal(done.rowsSent, ROWS);
    await assertEveryReadInOrder(store);
  });

  test('a capture whose source the config does not declare is refused, naming it', async () => {
    await assert.rejects(
      runBackfill(store.db.pool, 'items', {}),
      /reads source shop, which the config given to this process does not declare/,
    );
  });
});

const skipMysql = await mariadbUnavailable();

describe('backfill of a MySQL/MariaDB source', { skip: skipMysql }, () => {
  const database = `rowcast_b_${randomBytes(5).toString('hex')}`;
  const store = new Store();
  let admin: mysql.Connection;

  before(async () => {
    admin = await mysql.createConnection({ uri: MARIADB, database: undefined });
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`USE ${database}`);
    await admin.query(`SET time_zone = '+00:00'`);
    await admin.query(
      `CREATE TABLE items (id BIGINT UNSIGNED PRIMARY KEY, v INT NOT NULL DEFAULT 0, dt DATETIME(3), ts TIMESTAMP(6) NULL, d DATE, j JSON, b BLOB, bits BIT(10),
        e ENUM('small','large'), tags SET('red','green','blue'), amount DECIMAL(30,10), neg BIGINT, f DOUBLE, small INT UNSIGNED, note TEXT)`,
    );
    await admin.query(
      `INSERT INTO items (id, note) WITH RECURSIVE s(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM s WHERE i < ${ROWS}) SELECT i, CONCAT('row ', i) FROM s`,
    );
    await store.setUp({
      sources: { maria: { kind: 'mysql', url: MARIADB, serverId: randomInt(100_000, 4_000_000) } },
      topics: { items: {} },
      captures: { items: { source: 'maria', table: `${database}.items`, topic: 'items', payload: 'row' } },
    });
  });

  after(async () => {
    await store.tearDown();
    await admin?.query(`DROP DATABASE IF EXISTS ${database}`);
    await admin?.end();
  });

  test("every row once as READ, in key order; a READ's values equal the binlog INSERT's (DATETIME, JSON, BLOB, BIT, ENUM/SET, unsigned, decimals)", async () => {
    await admin.query(
      `INSERT INTO items VALUES (1, 0, '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456', '2024-02-03', '{"a": [1, 2], "b": null}',
        x'00ff10', b'1010010101', 'large', 'red,blue', '12345678901234567890.0123456789', -9223372036854775808, 1.5, 4294967295, 'héllo')`,
    );
    const [inserted] = await eventually(
      async () => ((await store.events('INSERT')).length ? store.events('INSERT') : null),
      'the INSERT event',
      30_000,
    );
    const done = await runBackfill(store.db.pool, 'items', { sources: store.sources, batch: 64 });
    assert.equal(done.state, 'done');
    assert.equal(done.rowsSent, ROWS);
    assert.equal(done.rowsTotal, ROWS);
    const reads = await eventually(
      async () => {
        const r = await store.events('READ');
        return r.length === ROWS ? r : null;
      },
      'every READ event',
      30_000,
    );
    assert.deepEqual(
      reads.map((e) => Number(e.key.id)),
      Array.from({ length: ROWS }, (_, i) => i + 1),
    );
    assert.deepEqual(reads[0]!.after, inserted!.after);
    assert.equal(inserted!.after!.bits, '1010010101');
    assert.deepEqual(inserted!.after!.tags, ['red', 'blue']);
    // The backfill table the batches went through is empty.
    const [copies] = (await admin.query(
      `SELECT TABLE_NAME AS t, TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'rowcast_backfill_%'`,
      [database],
    )) as [{ t: string }[], unknown];
    assert.equal(copies.length, 1);
    const [left] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${copies[0]!.t}\``)) as [{ n: number }[], unknown];
    assert.equal(Number(left[0]!.n), 0);
  });

  test('rows updated during the backfill are never delivered older after newer', async () => {
    const writer = await mysql.createConnection({ uri: MARIADB, database });
    try {
      await backfillWhileUpdating(store, (id) => writer.query('UPDATE items SET v = v + 1 WHERE id = ?', [id]));
    } finally {
      await writer.end();
    }
  });

  test('resumes after a kill between batches; --where is MySQL SQL', async () => {
    await killedBackfill(store);
    const done = await runBackfill(store.db.pool, 'items', { sources: store.sources });
    assert.equal(done.rowsSent, ROWS);
    await assertEveryReadInOrder(store, 30_000);

    await store.clear();
    const some = await runBackfill(store.db.pool, 'items', {
      sources: store.sources,
      restart: true,
      where: 'id % 10 = 0',
    });
    assert.equal(some.rowsSent, ROWS / 10);
    await assert.rejects(
      runBackfill(store.db.pool, 'items', { sources: store.sources, restart: true, where: 'nope(' }),
      /is not a valid condition on/,
    );
  });
});

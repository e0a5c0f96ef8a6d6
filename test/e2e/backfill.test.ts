import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getBackfill, runBackfill } from '../../src/capture/backfill.js';
import type { RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { fetch } from 'undici';
import { runCli } from '../support/cli.js';

/*
 * Backfills send the rows a table holds now as READ events, for a trigger capture (written in the backfill's
 * transactions) and a logical capture (through the write-ahead log, turned into events by the reader).
 */

let db: TestDatabase;
let runtime: RowcastRuntime;
const ROWS = 300;
const TOKEN = 'backfill-test-token';

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${runtime.httpUrl!}/api${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

before(async () => {
  db = await createTestDatabase();
  for (const t of ['t_items', 'l_items']) {
    await db.pool.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, note text, big bigint)`);
    await db.pool.query(
      `INSERT INTO ${t} (id, note, big) SELECT i, 'row ' || i, 9007199254740993 FROM generate_series(1, ${ROWS}) AS i`,
    );
  }
  await db.pool.query(`CREATE TABLE k_items (a bigint, b text, PRIMARY KEY (a, b))`);
  await db.pool.query(
    `INSERT INTO k_items SELECT 9007199254740993 + i / 2, 'b' || (i % 2) FROM generate_series(0, 9) AS i`,
  );
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: {
      trig: { table: 't_items', topic: 'items', payload: 'row' },
      logi: { table: 'l_items', topic: 'items', payload: 'row', mode: 'logical' },
      keyed: { table: 'k_items', topic: 'items', payload: 'keys' },
    },
  });
  runtime = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1', token: TOKEN } });
});

after(async () => {
  await runtime?.stop();
  await db?.drop();
});

async function events(capture: string, op?: string) {
  const { rows } = await db.pool.query<{
    id: string;
    op: string;
    key: { id: number };
    after: { id: number; v: number; note: string; big: string } | null;
  }>(
    `SELECT e.id::text AS id, op, key, after FROM rowcast.events e WHERE capture = $1 AND ($2::text IS NULL OR op = $2) ORDER BY e.id`,
    [capture, op ?? null],
  );
  return rows;
}

const clear = (capture: string) => db.pool.query('DELETE FROM rowcast.events WHERE capture = $1', [capture]);

/** Per row, the values of v its events carry in event order must never go back (older after newer). */
function assertNeverOlder(rows: Awaited<ReturnType<typeof events>>) {
  const seen = new Map<number, number>();
  for (const e of rows) {
    if (!e.after) continue;
    const prior = seen.get(e.after.id);
    assert.ok(
      prior === undefined || e.after.v >= prior,
      `row ${e.after.id}: v ${e.after.v} delivered after v ${prior} (event ${e.id}, ${e.op})`,
    );
    seen.set(e.after.id, e.after.v);
  }
}

describe('backfill', () => {
  test('a trigger capture: every row once as READ, in key order, shaped as its INSERT events', async () => {
    await clear('trig');
    const seen: number[] = [];
    const done = await runBackfill(db.pool, 'trig', { batch: 64, onProgress: (p) => seen.push(p.rowsSent) });
    assert.equal(done.state, 'done');
    assert.equal(done.rowsSent, ROWS);
    assert.equal(done.rowsTotal, ROWS);
    assert.deepEqual(seen.slice(0, 3), [64, 128, 192]);
    const rows = await events('trig');
    assert.equal(rows.length, ROWS);
    assert.deepEqual(
      rows.map((e) => e.key.id),
      Array.from({ length: ROWS }, (_, i) => i + 1),
    );
    assert.ok(rows.every((e) => e.op === 'READ'));
    assert.deepEqual(rows[0]!.after, { id: 1, v: 0, note: 'row 1', big: '9007199254740993' });
    // The same shape as a live INSERT's event.
    await db.pool.query(`INSERT INTO t_items (id, note, big) VALUES (100000, 'live', 9007199254740993)`);
    const live = (await events('trig', 'INSERT')).at(-1)!;
    assert.deepEqual(Object.keys(live.after!).sort(), Object.keys(rows[0]!.after!).sort());
    await db.pool.query('DELETE FROM t_items WHERE id = 100000');
  });

  test('a composite bigint key: batches resume after the exact last key', async () => {
    const done = await runBackfill(db.pool, 'keyed', { batch: 3 });
    assert.equal(done.rowsSent, 10);
    const { rows } = await db.pool.query<{ key: { a: string; b: string } }>(
      `SELECT key FROM rowcast.events WHERE capture = 'keyed' ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => `${r.key.a}/${r.key.b}`),
      Array.from({ length: 10 }, (_, i) => `${9007199254740993n + BigInt(Math.floor(i / 2))}/b${i % 2}`),
    );
  });

  test('--where chooses the rows; a different --where on a half-done backfill is refused without --restart', async () => {
    await clear('trig');
    const done = await runBackfill(db.pool, 'trig', { where: 'id % 10 = 0', batch: 7 });
    assert.equal(done.rowsSent, ROWS / 10);
    assert.deepEqual(
      (await events('trig')).map((e) => e.key.id),
      Array.from({ length: ROWS / 10 }, (_, i) => (i + 1) * 10),
    );
    await assert.rejects(
      runBackfill(db.pool, 'trig', { where: 'no_such_column > 1' }),
      /is not a valid condition on public\.t_items/,
    );
    // Interrupted half-way (its state: failed), then asked with another condition.
    await assert.rejects(
      runBackfill(db.pool, 'trig', {
        where: 'id > 0',
        batch: 10,
        onProgress: () => {
          throw new Error('crash');
        },
      }),
      /crash/,
    );
    await assert.rejects(runBackfill(db.pool, 'trig', { where: 'id > 100' }), /--restart/);
  });

  test('resumes after a crash mid-backfill: each row once in all', async () => {
    await clear('trig');
    let batches = 0;
    await assert.rejects(
      runBackfill(db.pool, 'trig', {
        batch: 50,
        restart: true,
        onProgress: () => {
          if (++batches === 3) throw new Error('killed');
        },
      }),
      /killed/,
    );
    // A killed process leaves its state running (nobody marks it failed): the next run resumes it all the same.
    await db.pool.query(`UPDATE rowcast.backfills SET state = 'running' WHERE capture = 'trig'`);
    assert.equal((await getBackfill(db.pool, 'trig'))!.rowsSent, 150);
    const done = await runBackfill(db.pool, 'trig', {});
    assert.equal(done.state, 'done');
    assert.equal(done.rowsSent, ROWS);
    const ids = (await events('trig')).map((e) => e.key.id);
    assert.deepEqual(
      ids,
      Array.from({ length: ROWS }, (_, i) => i + 1),
    );
  });

  for (const [capture, table] of [
    ['trig', 't_items'],
    ['logi', 'l_items'],
  ] as const) {
    test(`${capture === 'trig' ? 'a trigger' : 'a logical'} capture: rows updated during the backfill are never delivered older after newer`, async () => {
      await clear(capture);
      let stop = false;
      // A writer bumps v of random rows while the backfill runs.
      const writer = (async () => {
        let n = 0;
        while (!stop) {
          await db.pool.query(`UPDATE ${table} SET v = v + 1 WHERE id = $1`, [1 + Math.floor(Math.random() * ROWS)]);
          n++;
        }
        return n;
      })();
      const done = await runBackfill(db.pool, capture, {
        batch: 20,
        restart: true,
        onProgress: () => new Promise((r) => setTimeout(r, 5)),
      }).finally(() => (stop = true));
      const updates = await writer;
      assert.equal(done.rowsSent, ROWS);
      const rows = await eventually(async () => {
        const r = await events(capture);
        return r.filter((e) => e.op === 'READ').length === ROWS && r.filter((e) => e.op === 'UPDATE').length === updates
          ? r
          : null;
      }, 'every READ and UPDATE event');
      assertNeverOlder(rows);
      assert.equal(new Set(rows.filter((e) => e.op === 'READ').map((e) => e.key.id)).size, ROWS);
    });
  }

  test('the CLI: a progress bar on stderr, the result on stdout; the capture is named when unknown', async () => {
    await clear('logi');
    const r = await runCli(['--progress', 'backfill', 'logi', '--batch', '100', '--restart'], {
      env: { DATABASE_URL: db.url },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /backfilled 300 rows of capture logi/);
    assert.match(r.stderr, /backfill logi \[#+-*\] \d+\/300 rows/);
    await eventually(async () => (await events('logi', 'READ')).length === ROWS, 'the READ events from the log');
    const missing = await runCli(['backfill', 'nope'], { env: { DATABASE_URL: db.url } });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no capture "nope"/);
  });

  test('the admin API: POST starts a backfill in the process, GET follows it to the end', async () => {
    await clear('trig');
    const started = await api('POST', '/captures/trig/backfill', { where: 'id <= 120', batch: 25, restart: true });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.state, 'running');
    assert.equal(started.body.rowsTotal, 120);
    const done = await eventually(async () => {
      const r = await api('GET', '/captures/trig/backfill');
      return r.body.state === 'done' ? r.body : null;
    }, 'the backfill done');
    assert.equal(done.rowsSent, 120);
    assert.equal((await events('trig', 'READ')).length, 120);
    assert.equal((await api('POST', '/captures/nope/backfill', {})).status, 404);
    assert.equal((await api('POST', '/captures/trig/backfill', { batch: 0 })).status, 400);
    assert.equal((await api('POST', '/captures/trig/backfill', { where: 'nonsense(' })).status, 400);
    // One condition, not a way to run other statements.
    assert.equal((await api('POST', '/captures/trig/backfill', { where: 'true; DROP TABLE t_items' })).status, 400);
    assert.ok((await db.pool.query(`SELECT to_regclass('t_items') IS NOT NULL AS ok`)).rows[0].ok);
  });
});

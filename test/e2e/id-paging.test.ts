import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fetch } from 'undici';
import type { RowcastRuntime } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';

// Ids are bigints sent as strings: every list must order them as numbers, or "10" sorts before "9".
const TOKEN = 'id-paging-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const ROWS = 105;

let db: TestDatabase;
let rowcast: RowcastRuntime;
let base: string;

let close: () => Promise<void>;

before(async () => {
  ({ db, rowcast, close } = await scenario({
    receivers: { receiver: {} },
    tables: 'CREATE TABLE items (id int PRIMARY KEY)',
    config: ({ receiver }) => ({
      topics: { items: {} },
      captures: { 'items-cap': { table: 'items', topic: 'items' } },
      // Rows: the deliveries paged here are rows, by their bigint ids (a cursor's are subscription@seq).
      subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: receiver.url, cursor: false } },
    }),
    runtime: { http: { port: 0, host: '127.0.0.1', token: TOKEN } },
  }));
  base = `${rowcast.httpUrl!}/api`;
});

after(() => close?.());

async function ok(path: string): Promise<any> {
  const res = await fetch(`${base}${path}`, { headers: auth });
  const body = await res.text();
  assert.equal(res.status, 200, `GET ${path}: ${body}`);
  return JSON.parse(body);
}

/** Every item of a list, page by page. */
async function allPages(path: string, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page: any = await ok(`${path}?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    ids.push(...page.items.map((i: any) => i.id as string));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

const descending = (n: number) => Array.from({ length: n }, (_, i) => String(n - i));

test('events and deliveries page newest first by numeric id, across 9→10 and 99→100', async () => {
  // One statement: all events share one capture time, so only the id orders them.
  await db.pool.query(`INSERT INTO items SELECT g FROM generate_series(1, ${ROWS}) g`);
  const { rows } = await db.pool.query<{ min: string; max: string }>(
    'SELECT min(id)::text AS min, max(id)::text AS max FROM rowcast.events',
  );
  assert.deepEqual([rows[0]!.min, rows[0]!.max], ['1', String(ROWS)], 'a fresh database numbers events from 1');
  for (const limit of [3, 10])
    assert.deepEqual(await allPages('/events', limit), descending(ROWS), `events, pages of ${limit}`);

  await eventually(
    async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].n ===
      ROWS,
    'every delivery done',
    60_000,
  );
  const deliveries = (await db.pool.query<{ min: string }>('SELECT min(id)::text AS min FROM rowcast.deliveries'))
    .rows[0]!.min;
  assert.equal(deliveries, '1');
  for (const limit of [3, 10])
    assert.deepEqual(await allPages('/deliveries', limit), descending(ROWS), `deliveries, pages of ${limit}`);
});

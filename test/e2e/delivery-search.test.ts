import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fetch } from 'undici';
import { rowKeyForms, searchDeliveries, searchQuery } from '../../src/admin/inspect/delivery-search.js';
import type { RowcastRuntime } from '../../src/index.js';
import { describeRun, runCli } from '../support/cli.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';

// Find a row's deliveries: by capture, operation, row key, subscription, state and time, in the API and the CLI.
const TOKEN = 'delivery-search-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let rowcast: RowcastRuntime;
let base: string;

let close: () => Promise<void>;

before(async () => {
  ({ db, rowcast, close } = await scenario({
    receivers: { receiver: {} },
    // int keys arrive as JSON numbers, bigint keys as strings; a composite key has two columns.
    tables: `CREATE TABLE orders (id int PRIMARY KEY, total int);
             CREATE TABLE lines (order_id bigint, n int, qty int, PRIMARY KEY (order_id, n))`,
    config: ({ receiver }) => ({
      topics: { orders: {}, lines: {} },
      captures: { 'orders-cap': { table: 'orders', topic: 'orders' }, 'lines-cap': { table: 'lines', topic: 'lines' } },
      // Rows: a search across subscriptions, by row key, capture or id, reads the delivery rows (a cursor writes
      // none for a first-time success).
      subscriptions: {
        'orders-hook': { topic: 'orders', protocol: 'http', endpoint: receiver.url, cursor: false },
        'orders-audit': { topic: 'orders', protocol: 'http', endpoint: receiver.url, cursor: false },
        'lines-hook': { topic: 'lines', protocol: 'http', endpoint: receiver.url, cursor: false },
      },
    }),
    runtime: { http: { port: 0, host: '127.0.0.1', token: TOKEN } },
  }));
  base = `${rowcast.httpUrl!}/api`;
  // Orders 1–6 inserted; 3 updated twice; 5 deleted. Lines (7, 1), (7, 2), and (42, 1).
  await db.pool.query('INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 6) g');
  await db.pool.query('UPDATE orders SET total = total + 1 WHERE id = 3');
  await db.pool.query('UPDATE orders SET total = total + 1 WHERE id = 3');
  await db.pool.query('DELETE FROM orders WHERE id = 5');
  await db.pool.query('INSERT INTO lines VALUES (7, 1, 1), (7, 2, 2), (42, 1, 3)');
  // 9 order events × 2 subscriptions + 3 line events = 21 deliveries.
  await eventually(
    async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].n === 21,
    'every delivery done',
    60_000,
  );
});

after(() => close?.());

async function get(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, { headers: auth });
  return { status: res.status, body: await res.json() };
}

async function ok(path: string): Promise<any> {
  const { status, body } = await get(path);
  assert.equal(status, 200, `GET ${path}: ${JSON.stringify(body)}`);
  return body;
}

/** Every item of a search, page by page. */
async function allPages(query: string, limit: number): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const page: any = await ok(`/deliveries?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

test("a row key finds that row's deliveries, in every subscription, each showing its row key, capture and operation", async () => {
  const three = await allPages('rowKey=id%3D3', 2);
  // INSERT + 2 UPDATEs, to both order subscriptions.
  assert.equal(three.length, 6);
  assert.deepEqual(new Set(three.map((d) => d.subscription)), new Set(['orders-hook', 'orders-audit']));
  assert.deepEqual(three.map((d) => d.op).sort(), ['INSERT', 'INSERT', 'UPDATE', 'UPDATE', 'UPDATE', 'UPDATE']);
  for (const d of three) {
    assert.deepEqual(d.rowKey, { id: 3 });
    assert.equal(d.capture, 'orders-cap');
    assert.equal(d.state, 'done');
  }
  const ids = three.map((d) => Number(d.id));
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => b - a),
    'newest first',
  );
  // The same row as JSON; the bigint and composite key of a line as column=value pairs (the bigint arrives as "7").
  assert.equal((await allPages(`rowKey=${encodeURIComponent('{"id": 3}')}`, 50)).length, 6);
  const line = await allPages(`rowKey=${encodeURIComponent('order_id=7,n=2')}`, 50);
  assert.equal(line.length, 1);
  assert.deepEqual(line[0].rowKey, { order_id: '7', n: 2 });
  assert.equal((await allPages(`rowKey=${encodeURIComponent('{"n": 1, "order_id": 42}')}`, 50)).length, 1);
  assert.equal((await allPages('rowKey=id%3D999', 50)).length, 0);
});

test('capture, operation, subscription, state and time filters combine with the row key', async () => {
  assert.equal((await allPages('capture=lines-cap', 50)).length, 3);
  assert.equal((await allPages('capture=orders-cap&op=delete', 50)).length, 2);
  const deleted = await allPages('op=DELETE&subscription=orders-hook', 50);
  assert.equal(deleted.length, 1);
  assert.deepEqual(deleted[0].rowKey, { id: 5 });
  assert.equal((await allPages('rowKey=id%3D3&op=UPDATE&subscription=orders-audit&status=done', 50)).length, 2);
  assert.equal((await allPages('rowKey=id%3D3&status=dead', 50)).length, 0);
  assert.equal((await allPages('capture=orders-cap&since=1h', 50)).length, 18);
  assert.equal(
    (
      await allPages(
        `capture=orders-cap&until=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`,
        50,
      )
    ).length,
    0,
  );
  // Bad input is refused naming the problem.
  const badOp = await get('/deliveries?op=MERGE');
  assert.equal(badOp.status, 400);
  assert.match(badOp.body.error.message, /op "MERGE" is not an operation; use one of INSERT, UPDATE, DELETE, TRUNCATE/);
  const badKey = await get('/deliveries?rowKey=42');
  assert.equal(badKey.status, 400);
  assert.match(badKey.body.error.message, /names no column; write column=value pairs/);
});

test('pages of a search follow the numeric id across 9→10', async () => {
  const all = await allPages('capture=orders-cap', 50);
  assert.equal(all.length, 18);
  assert.ok(all.some((d) => d.id === '9') && all.some((d) => d.id === '10'), 'ids 9 and 10 are among them');
  for (const limit of [1, 3, 4])
    assert.deepEqual(
      (await allPages('capture=orders-cap', limit)).map((d) => d.id),
      all.map((d) => d.id),
      `pages of ${limit}`,
    );
  assert.deepEqual(
    all.map((d) => Number(d.id)),
    all.map((d) => Number(d.id)).sort((a, b) => b - a),
  );
});

test('a row-key search reads the row key index, not every delivery', async () => {
  // Enough unrelated messages that a scan would be the planner's choice were there no index.
  await db.pool.query(
    `INSERT INTO rowcast.messages (topic, body, group_key) SELECT 'orders', '{}', 'other-' || g FROM generate_series(1, 20000) g`,
  );
  await db.pool.query(
    `INSERT INTO rowcast.deliveries (message_id, subscription, state) SELECT id, 'orders-audit', 'done' FROM rowcast.messages WHERE group_key LIKE 'other-%'`,
  );
  await db.pool.query('ANALYZE rowcast.messages; ANALYZE rowcast.deliveries');
  const query = searchQuery({ rowKey: 'id=3', capture: 'orders-cap' }, 50);
  const plan = (await db.pool.query({ text: `EXPLAIN ${query.text}`, values: query.values })).rows
    .map((r) => r['QUERY PLAN'] as string)
    .join('\n');
  assert.match(plan, /Index Scan on messages_group_key/, plan);
  assert.match(plan, /Index Scan using deliveries_message/, plan);
  assert.doesNotMatch(plan, /Seq Scan on (messages|deliveries)/, plan);
  assert.deepEqual(rowKeyForms('id=3'), ['{"id":"3"}', '{"id":3}', 'id=3']);
  // And the search itself still finds the row.
  assert.equal((await searchDeliveries(db.pool, { rowKey: 'id=3' })).items.length, 6);
});

test("rowcast deliveries finds a row's deliveries and shows its row key", async () => {
  const env = { DATABASE_URL: db.url };
  const run = await runCli(['deliveries', '--row-key', 'id=3', '--op', 'update', '-s', 'orders-hook'], { env });
  assert.equal(run.code, 0, describeRun(run));
  assert.match(run.stdout, /^DELIVERY\s+SUBSCRIPTION\s+CAPTURE\s+OP\s+ROW KEY/);
  const lines = run.stdout.trim().split('\n').slice(1);
  assert.equal(lines.length, 2, run.stdout);
  for (const l of lines) assert.match(l, /orders-hook\s+orders-cap\s+UPDATE\s+id=3\s+done/);
  const json = await runCli(['deliveries', '--capture', 'lines-cap', '--json'], { env });
  assert.equal(json.code, 0, describeRun(json));
  assert.equal(JSON.parse(json.stdout).length, 3);
  const bad = await runCli(['deliveries', '--row-key', '{"id": '], { env });
  assert.equal(bad.code, 1, describeRun(bad));
  assert.match(bad.stderr, /rowKey is not valid JSON/);
});

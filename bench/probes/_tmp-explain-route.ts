import { ONE_STATEMENT_SQL } from '../../src/topics/route-events.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';
const db = await probeDatabase('explain_route');
await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text)');
await applyProbeConfig(db.pool, { topics: { items: {} }, captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } }, subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/x' } } });
const c = await db.pool.connect();
await c.query('SET jit = off; SET enable_seqscan = off; SET enable_bitmapscan = off');
await c.query(`PREPARE r(int, text[], int[], int, text, text[], int[], int[], text) AS ${ONE_STATEMENT_SQL}`);
for (let i = 0; i < 12; i++) {
  await db.pool.query('INSERT INTO items VALUES ($1, $2)', [i, 'x']);
  const t = performance.now();
  await c.query(`EXECUTE r(500, '{hook}', '{5}', 60000, 'me', '{}', '{}', '{}', null)`);
  console.log('execute ms', (performance.now() - t).toFixed(2));
}
await db.pool.query('INSERT INTO items VALUES (100, $1)', ['x']);
await c.query('BEGIN');
const { rows } = await c.query(`EXPLAIN (ANALYZE, TIMING on, SUMMARY on) EXECUTE r(500, '{hook}', '{5}', 60000, 'me', '{}', '{}', '{}', null)`);
console.log(rows.map((r) => r['QUERY PLAN']).join('\n'));
await c.query('ROLLBACK');
c.release();
await db.drop();

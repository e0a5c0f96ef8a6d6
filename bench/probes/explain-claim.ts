/**
 * EXPLAIN ANALYZE of the hot statements against a backlog, and their rates: routing batches of events (the plan
 * too with EXPLAIN_ROUTE=1), claiming deliveries 200 at a time.
 *   DATABASE_URL=… npx tsx bench/probes/explain-claim.ts [events]
 */
import { CLAIM_SQL, claimDeliveries } from '../../src/delivery/delivery-store.js';
import { ONE_STATEMENT_SQL, routeEvents } from '../../src/routing/route-events.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 50_000);
const db = await probeDatabase('explain');
await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)');
await applyProbeConfig(db.pool, {
  topics: { items: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  // Rows: what this probe measures is the delivery rows' statements.
  subscriptions: { s0: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/x', cursor: false } },
});
await db.pool.query(`INSERT INTO items SELECT g, 'name ' || g, g % 100 FROM generate_series(1, $1::int) g`, [events]);
if (process.env.EXPLAIN_ROUTE) {
  const plan = await db.pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${ONE_STATEMENT_SQL}`, [
    500,
    [],
    [],
    0,
    null,
    [],
    [],
    [],
    null,
  ]);
  console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
}
let t = Date.now();
let routed = 0;
for (;;) {
  const r = await routeEvents(db.pool, 500);
  if (!r.events) break;
  routed += r.events;
}
console.log(`routed ${routed} events in ${Date.now() - t} ms (${Math.round((routed * 1000) / (Date.now() - t))}/s)`);
await db.pool.query('VACUUM ANALYZE rowcast.deliveries, rowcast.messages, rowcast.events');
t = Date.now();
let claimed = 0;
for (let i = 0; i < 50; i++)
  claimed += (await claimDeliveries(db.pool, new Map([['s0', 200]]), 60_000, 'probe')).length;
console.log(
  `claimed ${claimed} deliveries in ${Date.now() - t} ms (${Math.round((claimed * 1000) / (Date.now() - t))}/s)`,
);
const plan = await db.pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${CLAIM_SQL}`, [['s0'], [200], 60_000, 'probe']);
console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
await db.drop();

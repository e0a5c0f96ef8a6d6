/**
 * Does claiming slow down as a backlog drains? Routes N events to one subscription, then claims and completes
 * them in rounds of 200 (no HTTP) and prints the rate per 20,000: a rate that falls means each claim reads
 * more of what was already delivered (dead index entries).
 *   DATABASE_URL=… npx tsx bench/probes/claim-decay.ts [events]
 */
import { claimDeliveries, completeDeliveries } from '../../src/delivery/delivery-store.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 200_000);
const db = await probeDatabase('decay');
await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)');
await applyProbeConfig(db.pool, {
  topics: { items: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  // Rows: what this probe measures is the delivery rows' statements.
  subscriptions: { s0: { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/x', cursor: false } },
});
for (let i = 0; i < events; i += 50_000)
  await db.pool.query(`INSERT INTO items SELECT g, 'name ' || g, g % 100 FROM generate_series($1::int, $2::int) g`, [
    i + 1,
    Math.min(events, i + 50_000),
  ]);
for (;;) if (!(await routeEvents(db.pool, 1000)).events) break;
let done = 0;
let t = Date.now();
let claimMs = 0;
while (done < events) {
  const c0 = Date.now();
  const claimed = await claimDeliveries(db.pool, new Map([['s0', 200]]), 60_000, 'probe');
  claimMs += Date.now() - c0;
  if (!claimed.length) break;
  await completeDeliveries(
    db.pool,
    claimed.map((c) => ({
      deliveryId: c.deliveryId,
      attempt: c.attempt,
      lease: c.lease,
      state: 'done' as const,
      status: 200,
    })),
  );
  done += claimed.length;
  if (done % 20_000 === 0) {
    console.log(
      `${done}: ${Math.round(20_000_000 / (Date.now() - t))}/s, claims ${claimMs} ms of ${Date.now() - t} ms`,
    );
    t = Date.now();
    claimMs = 0;
  }
}
await db.drop();

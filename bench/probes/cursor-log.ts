/**
 * Issue 20's question, measured before building it: what PostgreSQL does per delivery today, against a log read by
 * cursors. No HTTP and one connection, so the figures are the database's own work per delivery.
 *   rows   — today's path, rowcast's own statements: the router copies each captured event into a message and
 *            fans it out into one delivery row per subscription (routeEvents), each delivery is claimed
 *            (claimDeliveries, 200 per subscription) and its result recorded (completeDeliveries).
 *   cursor — the same events, read where they were written: each subscription has a cursor over the events of its
 *            topic; a batch is one statement that leases the next range (up to 200 events past the cursor, fenced
 *            by a random token) and returns its bodies, and one that advances the cursor when the batch is done.
 *            Nothing is written per event; filter policies would run in memory at delivery.
 * Both sides commit as rowcast does: claims and leases with synchronous_commit off, results and advances durable.
 * Prints per side and subscription count: µs per delivery, WAL bytes per delivery, statements per 1000 deliveries.
 * The WAL and statement figures do not depend on the machine's speed; µs are medians of one run (read the ratio).
 *   DATABASE_URL=… npx tsx bench/probes/cursor-log.ts [events] [subscriptions…]   (default 20000 1 10; without
 *   DATABASE_URL an embedded PostgreSQL)
 */
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import type { Pool } from '../../src/store/pool.js';
import { claimDeliveries, completeDeliveries } from '../../src/subscriptions/delivery-store.js';
import { routeEvents } from '../../src/topics/route-events.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 20_000);
const fanouts = process.argv.slice(3).map(Number);
if (!fanouts.length) fanouts.push(1, 10);
const BATCH = 200;

const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
if (embedded) process.env.DATABASE_URL = embedded.url;

interface Cost {
  deliveries: number;
  ms: number;
  wal: bigint;
  statements: number;
}
const lsn = async (pool: Pool) => BigInt((await pool.query<{ b: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS b`)).rows[0]!.b);

/** Runs `work` and counts its time and WAL; `work` returns how many deliveries it made and statements it ran. */
async function measure(pool: Pool, work: () => Promise<{ deliveries: number; statements: number }>): Promise<Cost> {
  const w0 = await lsn(pool);
  const t0 = performance.now();
  const { deliveries, statements } = await work();
  const ms = performance.now() - t0;
  return { deliveries, statements, ms, wal: (await lsn(pool)) - w0 };
}

async function rowsSide(pool: Pool, subscriptions: string[]): Promise<Cost> {
  return measure(pool, async () => {
    let statements = 0;
    for (;;) {
      statements++;
      if (!(await routeEvents(pool, 1000)).events) break;
    }
    let deliveries = 0;
    for (;;) {
      statements++;
      const claimed = await claimDeliveries(pool, new Map(subscriptions.map((s) => [s, BATCH])), 60_000, 'probe');
      if (!claimed.length) break;
      statements++;
      await completeDeliveries(
        pool,
        claimed.map((c) => ({ deliveryId: c.deliveryId, attempt: c.attempt, lease: c.lease, state: 'done' as const, status: 204, durationMs: 1 })),
      );
      deliveries += claimed.length;
    }
    return { deliveries, statements };
  });
}

async function cursorSide(pool: Pool, subscriptions: string[]): Promise<Cost> {
  await pool.query(`CREATE TABLE probe_cursors (
    subscription text PRIMARY KEY, topic text NOT NULL, position bigint NOT NULL DEFAULT 0,
    lease_token uuid, lease_to bigint, lease_until timestamptz)`);
  await pool.query(`INSERT INTO probe_cursors (subscription, topic) SELECT s, 'items' FROM unnest($1::text[]) s`, [subscriptions]);
  // The events' topic index, as a log read by topic would need (rowcast.events has none today).
  await pool.query('CREATE INDEX probe_events_topic_id ON rowcast.events (topic, id)');
  const client = await pool.connect();
  try {
    await client.query('SET synchronous_commit = off');
    return await measure(pool, async () => {
      let deliveries = 0;
      let statements = 0;
      for (let active = [...subscriptions]; active.length; ) {
        const next: string[] = [];
        for (const subscription of active) {
          statements++;
          const { rows } = await client.query<{ lease_token: string; id: string; after: unknown }>(
            `WITH c AS (SELECT position, topic FROM probe_cursors WHERE subscription = $1 AND (lease_token IS NULL OR lease_until < now()) FOR UPDATE),
                  r AS (SELECT e.id, e.after FROM c, rowcast.events e WHERE e.topic = c.topic AND e.id > c.position ORDER BY e.id LIMIT $2),
                  l AS (UPDATE probe_cursors SET lease_token = gen_random_uuid(), lease_to = (SELECT max(id) FROM r), lease_until = now() + interval '60 s'
                         WHERE subscription = $1 AND EXISTS (SELECT FROM r) RETURNING lease_token)
             SELECT l.lease_token, r.id, r.after FROM l, r ORDER BY r.id`,
            [subscription, BATCH],
          );
          if (!rows.length) continue;
          statements++;
          await pool.query(`UPDATE probe_cursors SET position = lease_to, lease_token = NULL WHERE subscription = $1 AND lease_token = $2`, [subscription, rows[0]!.lease_token]);
          deliveries += rows.length;
          next.push(subscription);
        }
        active = next;
      }
      return { deliveries, statements };
    });
  } finally {
    client.release();
  }
}

const results: { side: string; fanout: number; cost: Cost }[] = [];
for (const fanout of fanouts) {
  const subscriptions = Array.from({ length: fanout }, (_, i) => `s${i}`);
  // The cursor side first, on a fresh database whose events were never routed; then the rows side on another.
  for (const side of ['cursor', 'rows'] as const) {
    const db = await probeDatabase(`cursorlog_${side}`);
    await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)');
    await applyProbeConfig(db.pool, {
      topics: { items: {} },
      captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
      subscriptions: Object.fromEntries(subscriptions.map((s) => [s, { topic: 'items', protocol: 'http', endpoint: 'http://127.0.0.1:9/x' }])),
    });
    for (let i = 0; i < events; i += 50_000) await db.pool.query(`INSERT INTO items SELECT g, 'name ' || g, g % 100 FROM generate_series($1::int, $2::int) g`, [i + 1, Math.min(events, i + 50_000)]);
    await db.pool.query('CHECKPOINT');
    const cost = side === 'rows' ? await rowsSide(db.pool, subscriptions) : await cursorSide(db.pool, subscriptions);
    if (cost.deliveries !== events * fanout) throw new Error(`${side}: ${cost.deliveries} deliveries, expected ${events * fanout}`);
    results.push({ side, fanout, cost });
    await db.drop();
  }
}

console.log(`${events} events, batches of ${BATCH}, one connection, no HTTP`);
console.log('side    subs  deliveries   µs/delivery  WAL B/delivery  statements/1000');
for (const { side, fanout, cost } of results) {
  console.log(
    `${side.padEnd(7)} ${String(fanout).padStart(4)}  ${String(cost.deliveries).padStart(10)}  ${((cost.ms * 1000) / cost.deliveries).toFixed(1).padStart(12)}  ${String(cost.wal / BigInt(cost.deliveries)).padStart(14)}  ${((cost.statements * 1000) / cost.deliveries).toFixed(1).padStart(15)}`,
  );
}
for (const fanout of fanouts) {
  const [rows, cursor] = ['rows', 'cursor'].map((s) => results.find((r) => r.side === s && r.fanout === fanout)!.cost);
  const per = (c: Cost) => c.ms / c.deliveries;
  console.log(`${fanout} subscription(s): cursor/rows time ${(per(cursor!) / per(rows!)).toFixed(2)}×, WAL ${(Number(cursor!.wal) / Number(rows!.wal)).toFixed(3)}×`);
}
await embedded?.stop();

/**
 * What the per-attempt request/response log costs where it is written: the statement that records a batch of
 * results (completeDeliveries). Routes N events to one subscription, then claims them 200 at a time (no HTTP) and
 * records each batch as delivered, rotating between three kinds of result batch by batch (so drift of a busy machine
 * falls on all three alike):
 *   none     — no exchange: what a delivery done at once wrote before the log (its attempt_log stays NULL)
 *   ack      — a typical webhook: the request headers the HTTP sink sends, a 204 with four headers and no body
 *   full-1kb — the same with a 1 KB response body (the most an attempt keeps)
 * Prints per kind: ms per batch (median) and µs per result, WAL bytes per result, and the stored attempt_log size.
 *   DATABASE_URL=… npx tsx bench/probes/attempt-log.ts [events]     (without DATABASE_URL: an embedded PostgreSQL)
 */
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { type AttemptExchange, redactHeaders } from '../../src/model/attempt-log.js';
import { claimDeliveries, completeDeliveries } from '../../src/delivery/delivery-store.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 30_000);
const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
if (embedded) process.env.DATABASE_URL = embedded.url;
const db = await probeDatabase('attemptlog');

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

const request = {
  headers: redactHeaders({
    'content-type': 'application/json',
    'user-agent': 'rowcast/0.1 (+https://github.com/rowcast/rowcast)',
    'webhook-id': '0193b6f0-5b2a-7cc1-9a51-6d1f3c2e8a44',
    'rowcast-subscription': 's0',
    'rowcast-topic': 'items',
    'rowcast-attempt': '1',
    'rowcast-max-attempts': '10',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    'webhook-timestamp': '1796391765',
    'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
  }),
};
const ackHeaders = {
  date: 'Fri, 04 Dec 2026 13:42:45 GMT',
  connection: 'keep-alive',
  'keep-alive': 'timeout=5',
  'content-length': '0',
};
const kinds: Record<string, AttemptExchange | undefined> = {
  none: undefined,
  ack: { request, response: { status: 204, headers: ackHeaders, body: '', bodyTruncated: false } },
  'full-1kb': {
    request,
    response: {
      status: 200,
      headers: { ...ackHeaders, 'content-length': '4000' },
      body: 'x'.repeat(1024),
      bodyTruncated: true,
    },
  },
};
const names = Object.keys(kinds);
const stats = new Map(names.map((k) => [k, { ms: [] as number[], results: 0, wal: 0n, ids: [] as string[] }]));

const lsn = async () =>
  BigInt((await db.pool.query<{ b: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS b`)).rows[0]!.b);
for (let batch = 0; ; batch++) {
  const claimed = await claimDeliveries(db.pool, new Map([['s0', 200]]), 60_000, 'probe');
  if (!claimed.length) break;
  const kind = names[batch % names.length]!;
  const s = stats.get(kind)!;
  const results = claimed.map((c) => ({
    deliveryId: c.deliveryId,
    attempt: c.attempt,
    lease: c.lease,
    state: 'done' as const,
    status: 200,
    durationMs: 3,
    exchange: kinds[kind],
  }));
  const w0 = await lsn();
  const t0 = performance.now();
  await completeDeliveries(db.pool, results);
  s.ms.push(performance.now() - t0);
  s.wal += (await lsn()) - w0;
  s.results += results.length;
  s.ids.push(claimed[0]!.deliveryId);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(stats.get('none')!.ms);
console.log(`${events} deliveries recorded as delivered, batches of 200, kinds rotated batch by batch`);
console.log('kind       batches  median ms/batch  µs/result  ratio  WAL B/result  attempt_log B/row');
for (const [kind, s] of stats) {
  const size = (
    await db.pool.query<{ b: number | null }>(
      `SELECT avg(coalesce(pg_column_size(attempt_log), 0))::float8 AS b FROM rowcast.deliveries WHERE id = ANY($1::bigint[])`,
      [s.ids],
    )
  ).rows[0]!.b;
  const m = median(s.ms);
  console.log(
    `${kind.padEnd(10)} ${String(s.ms.length).padStart(7)}  ${m.toFixed(2).padStart(15)}  ${((m * 1000) / 200).toFixed(1).padStart(9)}  ${(m / base).toFixed(2).padStart(5)}  ${String(s.wal / BigInt(s.results)).padStart(12)}  ${Math.round(
      size ?? 0,
    )
      .toString()
      .padStart(17)}`,
  );
}
await db.drop();
await embedded?.stop();

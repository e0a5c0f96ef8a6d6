/**
 * Latency probe: one writer inserts a row every 5 ms (200/s) while rowcast runs in this process; prints commit →
 * webhook arrival percentiles (one clock: the receiver runs here too).
 *   DATABASE_URL=… [CURSOR=1] npx tsx bench/probes/latency.ts [seconds] [--function]
 * CURSOR=1: the subscription reads its topic through a cursor (issue 20). PREFILL=n: the log holds n messages of a
 * topic nobody reads, the events table n routed events and the invocations n finished ones, analyzed, as an
 * installation's tables do (plans depend on their size: migrations 053 and 054).
 */
import { createServer } from 'node:http';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyProbeConfig, prefillFromEnv, probeDatabase } from './probe-db.js';

const seconds = Number(process.argv[2] ?? 5);
// With QUERY_STATS=1: rowcast's statements by kind, how many and how long (pg.Client#query wrapped: pools' queries
// and those of clients held for a while, like the claim session's). A pool passes the client a callback, so the
// time runs until the callback, not until the call returns.
const stats = new Map<string, { n: number; ms: number }>();
if (process.env.QUERY_STATS) {
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  const record = (kind: string, since: number) => {
    const s = stats.get(kind) ?? { n: 0, ms: 0 };
    s.n++;
    s.ms += performance.now() - since;
    stats.set(kind, s);
  };
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const text = typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string }).text);
    const kind = text.replace(/\s+/g, ' ').trim().slice(0, 60);
    const since = performance.now();
    const callback = args.at(-1);
    if (typeof callback === 'function') {
      args[args.length - 1] = (...result: unknown[]) => {
        record(kind, since);
        (callback as (...r: unknown[]) => void)(...result);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    return result instanceof Promise ? result.finally(() => record(kind, since)) : result;
  };
}
const viaFunction = process.argv.includes('--function');
const db = await probeDatabase('latency');
const committedAt = new Map<string, number>();
const arrivedAt = new Map<string, number>();
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => {
    const id = /"id":\s*"?(\d+)"?\s*[,}]/.exec(body.slice(body.indexOf('"after"')))?.[1];
    // The first arrival counts; it may come before the writer has seen its commit return.
    if (id && !arrivedAt.has(id)) arrivedAt.set(id, performance.now());
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
await db.pool.query('CREATE TABLE items (id bigint PRIMARY KEY, name text)');
const config: RowcastConfigInput = {
  topics: { items: {}, out: {} },
  captures: {
    items: viaFunction
      ? { table: 'items', function: 'noop', operations: ['INSERT'] }
      : { table: 'items', topic: 'items', operations: ['INSERT'] },
  },
  functions: { noop: { handler: new URL('./noop-publisher.ts', import.meta.url).pathname } },
  subscriptions: {
    hook: { topic: viaFunction ? 'out' : 'items', protocol: 'http', endpoint: url, cursor: process.env.CURSOR === '1' },
  },
};
await applyProbeConfig(db.pool, config);
await prefillFromEnv(db.pool, 'noop');
const rowcast = await startRowcast({
  databaseUrl: db.url,
  runtime: { allowPrivateEndpoints: true, logLevel: 'warn' },
  functions: parseConfig(config, 'probe').functions,
  logger: createLogger('warn'),
});
// Warm-up (handler threads start cold): a burst, then wait for it.
await db.pool.query(`INSERT INTO items SELECT -g, 'warm-up' FROM generate_series(1, 50) g`);
await new Promise((r) => setTimeout(r, 4000));
const end = Date.now() + seconds * 1000;
for (let id = 1; Date.now() < end; id++) {
  await db.pool.query('INSERT INTO items VALUES ($1, $2)', [id, 'x']);
  committedAt.set(String(id), performance.now());
  await new Promise((r) => setTimeout(r, 5));
}
await new Promise((r) => setTimeout(r, 1000));
const latencies = [...committedAt].flatMap(([id, at]) =>
  arrivedAt.has(id) ? [Math.max(0, arrivedAt.get(id)! - at)] : [],
);
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  +latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(2);
console.log(
  JSON.stringify({
    viaFunction,
    arrived: latencies.length,
    sent: committedAt.size,
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: pct(100),
  }),
);
for (const [kind, s] of [...stats].sort((a, b) => b[1].n - a[1].n).slice(0, 12))
  console.log(`${String(s.n).padStart(6)} × ${(s.ms / s.n).toFixed(2).padStart(6)} ms  ${kind}`);
if (viaFunction) {
  // Where the time goes, on PostgreSQL's clock: capture → invocation queued (routing) → results statement began
  // (thread hand-off, handler, batching) → delivery recorded (claim or direct lease, HTTP, batching).
  const { rows } = await db.pool.query(`
    WITH s AS (
      SELECT extract(epoch FROM i.created_at - e.captured_at) * 1000 AS routed,
             extract(epoch FROM i.finished_at - i.created_at) * 1000 AS ran,
             extract(epoch FROM d.delivered_at - i.finished_at) * 1000 AS delivered
        FROM rowcast.events e JOIN rowcast.invocations i ON i.event_id = e.id
        -- Through a cursor, a delivered message has no row: its stage stays empty.
        LEFT JOIN rowcast.deliveries d ON d.message_id = i.published[1]
       WHERE e.after ->> 'id' NOT LIKE '-%')
    SELECT ${['routed', 'ran', 'delivered'].map((c) => `round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ${c})::numeric, 2) AS ${c}_p50, round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ${c})::numeric, 2) AS ${c}_p99`).join(', ')} FROM s`);
  console.log('stages (ms):', JSON.stringify(rows[0]));
}
await rowcast.stop();
server.close();
await db.drop();

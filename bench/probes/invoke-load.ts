/**
 * Invocations queued by SQL under load: `writers` connections call rowcast.invoke back to back for `seconds`, while
 * one rowcast process runs the function (it publishes once, to a topic nobody subscribes to). Nothing is captured,
 * so the function worker alone is woken, by its own flag (migration 039); under such load it clears the flag and
 * claims again LOADED_POLL_MS after a claim that found work (queue/claim-loop.ts). Prints invokes/s, invocations
 * finished per second (from the first queued to the last finished) and queued → finished percentiles.
 *   DATABASE_URL=… npx tsx bench/probes/invoke-load.ts [seconds] [writers]
 */
import pg from 'pg';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyProbeConfig, invocationsDone, probeDatabase, until } from './probe-db.js';

const seconds = Number(process.argv[2] ?? 10);
const writers = Number(process.argv[3] ?? 4);
const db = await probeDatabase('invokeload');
const config = await applyProbeConfig(db.pool, {
  topics: { relayed: {} },
  functions: {
    relay: {
      handler: new URL('../handlers/publish-once.ts', import.meta.url).pathname,
      environment: { ENV_TOPIC: 'relayed' },
    },
  },
});
const rowcast = await startRowcast({
  databaseUrl: db.url,
  runtime: { pollInterval: 1000 },
  functions: config.functions,
  logger: createLogger('silent'),
});
// Warm: the handler threads started, so that no wait below is a cold start.
await db.pool.query(`SELECT rowcast.invoke('relay', '{}', 'warm-up') FROM generate_series(1, 20)`);
await until(() => invocationsDone(db.pool), 'the warm-up');

let invokes = 0;
const end = Date.now() + seconds * 1000;
await Promise.all(
  Array.from({ length: writers }, async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    while (Date.now() < end) {
      await client.query(`SELECT rowcast.invoke('relay', $1)`, [`{"n":${invokes++}}`]);
    }
    await client.end();
  }),
);
await until(() => invocationsDone(db.pool), 'the invocations', 120_000);
const { rows } = await db.pool.query<{ n: number; span: string; p50: number; p90: number; p99: number }>(
  `SELECT count(*)::int AS n, extract(epoch FROM max(finished_at) - min(created_at)) AS span,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p90,
          percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
     FROM (SELECT created_at, finished_at, extract(epoch FROM finished_at - created_at) * 1000 AS ms
             FROM rowcast.invocations WHERE source = 'sql') t`,
);
const r = rows[0]!;
console.log(
  JSON.stringify({
    writers,
    invokesPerSecond: Math.round(invokes / seconds),
    finishedPerSecond: Math.round(r.n / Number(r.span)),
    p50: Math.round(Number(r.p50) * 10) / 10,
    p90: Math.round(Number(r.p90) * 10) / 10,
    p99: Math.round(Number(r.p99) * 10) / 10,
  }),
);
await rowcast.stop();
await db.drop();

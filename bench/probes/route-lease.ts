/**
 * What routing's own lease of its new messages costs PostgreSQL on an idle chain: one event per routing statement
 * (a writer trickling), every subscription reading through a cursor, the routing process's cursors with room, so
 * each statement appends a segment and leases it at once (migration 035). Side by side in one run:
 *   own   — the statement passes on the horizon its last lease returned: every seq past it is its own, and the
 *           lease does not look for other writers (migration 049)
 *   locks — each statement passes no settled horizon, so its lease reads the lock table for other writers, as
 *           every routing lease did before
 * Prints PostgreSQL's CPU µs per routing statement (its one backend), medians of `ROUNDS` (3) alternations.
 * PREFILL=n: the log holds n messages of a topic nobody reads first, and the events table n routed events, with
 * statistics, as an installation's tables do (the lease's and the tick's plans depend on their size: migrations
 * 053 and 054).
 *   DATABASE_URL=… [PREFILL=n] npx tsx bench/probes/route-lease.ts [statements] [cursors]   (default 2000 1)
 */
import { routeEvents } from '../../src/routing/route-events.js';
import { createPool } from '../../src/store/pool.js';
import { INITIAL_HORIZON, readLease, type LogHorizon } from '../../src/store/log-leases.js';
import { cpuSecondsOf, itemsReadBy, prefillFromEnv, probeDatabase } from './probe-db.js';

const statements = Number(process.argv[2] ?? 2_000);
const cursors = Number(process.argv[3] ?? 1);
const rounds = Number(process.env.ROUNDS ?? 3);

const db = await probeDatabase('route_lease');
const pool = createPool(db.url, { max: 1, queues: true });
try {
  const names = await itemsReadBy(db.pool, cursors);
  await prefillFromEnv(db.pool);
  const backend = (await pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const variants = ['own', 'locks'];
  const results: { variant: string; pgUsPerStatement: number }[] = [];
  let next = 0;
  for (const variant of ['warm-up', ...Array.from({ length: rounds }, () => variants).flat()]) {
    let horizon: LogHorizon = INITIAL_HORIZON;
    let pg = 0;
    for (let i = 0; i < statements; i++) {
      await db.pool.query('INSERT INTO items VALUES ($1)', [++next]);
      const before = cpuSecondsOf(backend);
      const routed = await routeEvents(pool, 100, {
        deliveries: {
          wanted: new Map(names.map((n) => [n, 100])),
          leaseMs: 600_000,
          owner: 'probe',
          claimedAt: Date.now(),
          horizon: variant === 'locks' ? INITIAL_HORIZON : horizon,
        },
      });
      pg += cpuSecondsOf(backend) - before;
      if (routed.events !== 1 || !routed.cursorsCovered) throw new Error(`statement ${i}: not routed and leased whole`);
      horizon = readLease(routed.leased).horizon;
    }
    // Leases handed back, so that each round's cursors start with room and nothing to take over.
    await db.pool.query('DELETE FROM rowcast.cursor_leases');
    if (variant === 'warm-up') continue;
    results.push({ variant, pgUsPerStatement: Math.round((pg * 1e6) / statements) });
    console.error(JSON.stringify(results.at(-1)));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    JSON.stringify({
      statements,
      cursors,
      rounds,
      medians: variants.map((variant) => ({
        variant,
        pgUsPerStatement: median(results.filter((r) => r.variant === variant).map((r) => r.pgUsPerStatement)),
      })),
    }),
  );
} finally {
  await pool.end();
  await db.drop();
}

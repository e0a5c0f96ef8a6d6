/**
 * What a topic's cursors cost PostgreSQL, and this process, to lease a backlog of segment entries at fan-out: one
 * connection, no HTTP, every cursor leasing `batch` at a time in a call of its own (cursors drifting apart, the
 * case a call's own sharing cannot help) or all in one call (`TOGETHER=1`). Side by side in one run:
 *   alone  — each lease told nothing: every cursor reads every entry's event
 *   held   — each lease told the stretches the process holds (migration 047): an event is read about once
 *   generic — held, the lease function's statements on generic plans (plan_cache_mode), not re-planned per call
 *   locks  — held, each lease told no settled horizon, so it reads the lock table for the log's writers as every
 *            lease did before migration 048 (one that finds nothing past its horizon now reads it not at all)
 * Prints per variant CPU µs per delivery of the backend and of this process (reading the rows, building messages),
 * medians of `ROUNDS` (3) alternations. Read the ratios.
 *   DATABASE_URL=… npx tsx bench/probes/lease-fanout.ts [events] [cursors] [batch]   (default 20000 10 50)
 */
import { leaseLogRanges } from '../../src/delivery/cursor-store.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { HeldEntries, INITIAL_HORIZON, type LogHorizon } from '../../src/store/log-leases.js';
import { cpuSecondsOf, itemsReadBy, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 20_000);
const cursors = Number(process.argv[3] ?? 10);
const batch = Number(process.argv[4] ?? 50);
const together = process.env.TOGETHER === '1';

const db = await probeDatabase('lease_fanout');
try {
  const names = await itemsReadBy(db.pool, cursors, 'id bigint PRIMARY KEY, name text, qty int');
  await db.pool.query('UPDATE rowcast.installation SET log_segments = true');
  await db.pool.query(`INSERT INTO items SELECT g, 'name ' || g, g % 100 FROM generate_series(1, $1::bigint) g`, [
    events,
  ]);
  while ((await routeEvents(db.pool, 1000)).events);
  const start = await db.pool.query('SELECT subscription, leased_to FROM rowcast.cursors');

  const client = await db.pool.connect();
  const backend = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const results: { variant: string; delivered: number; pgUsPerDelivery: number; processUsPerDelivery: number }[] = [];
  const fn =
    'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[], bigint)';
  const rounds = Number(process.env.ROUNDS ?? 3);
  const variants = ['alone', 'held', 'generic', 'locks'];
  for (const variant of ['warm-up', ...Array.from({ length: rounds }, () => variants).flat()]) {
    await db.pool.query(
      variant === 'generic'
        ? `ALTER FUNCTION ${fn} SET plan_cache_mode = force_generic_plan`
        : `ALTER FUNCTION ${fn} RESET plan_cache_mode`,
    );
    // PostgreSQL's caches and this process's JIT warm up on a first pass, not counted.
    await db.pool.query('DELETE FROM rowcast.cursor_leases');
    for (const r of start.rows)
      await db.pool.query('UPDATE rowcast.cursors SET leased_to = $2 WHERE subscription = $1', [
        r.subscription,
        r.leased_to,
      ]);
    const held = variant === 'alone' || variant === 'warm-up' ? undefined : new HeldEntries();
    let horizon: LogHorizon = INITIAL_HORIZON;
    let delivered = 0;
    const pg0 = cpuSecondsOf(backend);
    const own0 = process.cpuUsage();
    for (let more = true; more;) {
      more = false;
      for (const group of together ? [names] : names.map((n) => [n])) {
        const leased = await leaseLogRanges(
          client,
          new Map(group.map((n) => [n, batch])),
          600_000,
          'probe',
          horizon,
          // As the delivery worker's reader: only a topic that more than one cursor reads is held.
          held?.windows(new Set(cursors > 1 ? ['items'] : [])),
        );
        if (variant !== 'locks') horizon = leased.horizon;
        delivered += leased.messages.length;
        if (leased.messages.length) more = true;
      }
    }
    const pg = cpuSecondsOf(backend) - pg0;
    const own = process.cpuUsage(own0);
    if (variant === 'warm-up') continue;
    results.push({
      variant,
      delivered,
      pgUsPerDelivery: Math.round((pg * 1e6) / delivered),
      processUsPerDelivery: Math.round((own.user + own.system) / delivered),
    });
    console.error(JSON.stringify(results.at(-1)));
  }
  client.release();
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const medians = variants.map((variant) => {
    const of = results.filter((r) => r.variant === variant);
    return {
      variant,
      pgUsPerDelivery: median(of.map((r) => r.pgUsPerDelivery)),
      processUsPerDelivery: median(of.map((r) => r.processUsPerDelivery)),
    };
  });
  console.log(JSON.stringify({ events, cursors, batch, together, rounds, medians }));
} finally {
  await db.drop();
}

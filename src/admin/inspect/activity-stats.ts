import { ErrorCodes, RowcastError } from '../../model/errors.js';
import {
  activity,
  type ActivityRow,
  BUCKET_MS,
  LATENCY_BOUNDS,
  minuteStart,
  type Rates,
  ratesOf,
  seriesOf,
  type StatsPoint,
  stepsOf,
} from '../../observability/activity.js';
import type { Pool } from '../../store/pool.js';

/*
 * Rates and time series of every process: sums of rowcast.activity, which each process adds its counts to every
 * few seconds (src/observability/activity.ts), plus what this process has not written yet. Time windows read the
 * BRIN index on the bucket.
 */

/**
 * Counts per `kind:name` over the last minute, of every process: the rows they wrote to rowcast.activity plus this
 * process's unwritten ones.
 */
export async function activityRates(pool: Pool, now = Date.now()): Promise<Map<string, Rates>> {
  const since = minuteStart(now);
  const { rows } = await pool.query<{ kind: ActivityRow['kind']; name: string; count: number; errors: number }>(
    `SELECT kind, name, sum(count)::float8 AS count, sum(errors)::float8 AS errors
       FROM rowcast.activity WHERE bucket >= $1 AND kind IN ('subscription', 'function') GROUP BY kind, name`,
    [new Date(since)],
  );
  const stored = rows.map((r): ActivityRow => ({
    bucket: since,
    kind: r.kind,
    name: r.name,
    count: r.count,
    errors: r.errors,
    latency: null,
  }));
  return ratesOf([...stored, ...activity().rows()], now);
}

export interface Stats {
  /** Seconds per point. */
  step: number;
  series: StatsPoint[];
}

/**
 * Events, deliveries, failed attempts and delivery latency percentiles over the last `windowMs` in steps of
 * `stepMs`, of every process. The histograms are summed in the database (their bounds are the same everywhere),
 * then the percentiles read from the sum.
 */
export async function getStats(pool: Pool, windowMs: number, stepMs: number, now = Date.now()): Promise<Stats> {
  if (stepMs < BUCKET_MS || stepMs % BUCKET_MS)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `step must be a multiple of 10s (e.g. 10s, 1m), not ${stepMs / 1000}s.`,
    );
  if (windowMs > 3_600_000 || windowMs < stepMs)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `window must be at least one step and at most 1h (e.g. 15m), not ${windowMs / 1000}s.`,
    );
  const { start, end } = stepsOf(windowMs, stepMs, now);
  const step = `(floor(extract(epoch FROM a.bucket) * 1000 / $3::bigint) * $3::bigint)::float8`;
  const range = [new Date(start), new Date(end), stepMs];
  const [totals, histograms] = await Promise.all([
    pool.query<{ t: number; kind: ActivityRow['kind']; count: number; errors: number }>(
      `SELECT ${step} AS t, a.kind, sum(a.count)::float8 AS count, sum(a.errors)::float8 AS errors
         FROM rowcast.activity a WHERE a.bucket >= $1 AND a.bucket < $2 AND a.kind IN ('subscription', 'router') GROUP BY 1, 2`,
      range,
    ),
    pool.query<{ t: number; i: number; n: number }>(
      `SELECT ${step} AS t, h.i::int AS i, sum(h.n)::float8 AS n
         FROM rowcast.activity a CROSS JOIN LATERAL unnest(a.latency) WITH ORDINALITY AS h(n, i)
        WHERE a.bucket >= $1 AND a.bucket < $2 AND a.kind = 'subscription' GROUP BY 1, 2`,
      range,
    ),
  ]);
  const latency = new Map<number, number[]>();
  for (const h of histograms.rows) {
    const hist = latency.get(h.t) ?? LATENCY_BOUNDS.map(() => 0);
    if (h.i >= 1 && h.i <= hist.length) hist[h.i - 1] = h.n;
    latency.set(h.t, hist);
  }
  const stored = totals.rows.map((r): ActivityRow => ({
    bucket: r.t,
    kind: r.kind,
    name: '',
    count: r.count,
    errors: r.errors,
    latency: r.kind === 'subscription' ? (latency.get(r.t) ?? null) : null,
  }));
  return { step: stepMs / 1000, series: seriesOf([...stored, ...activity().rows()], windowMs, stepMs, now) };
}

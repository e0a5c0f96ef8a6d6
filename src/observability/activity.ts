import type { Logger } from './logger.js';
import { observe } from './observe.js';

/**
 * Activity counts for the rates and charts of the admin API and the dashboard, across every process sharing the
 * database. The hot path only increments in-memory counters per (10-second bucket, kind, name) — deliveries
 * acknowledged and failed per subscription (with a latency histogram), invocation attempts and failures per
 * function, events routed — fed by `observe`. Every few seconds the counts not yet written are added to
 * `rowcast.activity` with one upsert, and at stop; reads sum that table (src/admin/inspect/activity-stats.ts) plus
 * what this process has not written yet, so that its own latest work shows at once.
 */
export const BUCKET_MS = 10_000;
/** How long unwritten counts are kept when the database cannot take them (bounded memory). */
const KEEP_MS = 3_600_000;
const FLUSH_EVERY_MS = 5_000;
/**
 * Latency histogram bounds in ms (log-spaced); percentiles are read from it, as Prometheus does. Fixed, so that the
 * histograms of all processes add up exactly: changing them needs a new `kind` or a migration of stored rows.
 */
export const LATENCY_BOUNDS = [
  1,
  2,
  5,
  10,
  20,
  50,
  100,
  200,
  500,
  1000,
  2000,
  5000,
  10_000,
  30_000,
  60_000,
  300_000,
  Infinity,
];

/** subscription: count = acknowledged, errors = failed attempts; function: count = attempts, errors = failed ones; router: count = events routed. */
export type ActivityKind = 'subscription' | 'function' | 'router';

/** Counts of one kind and name in one bucket (or, read back summed, in one step). */
export interface ActivityRow {
  /** Start of the bucket (ms since epoch). */
  bucket: number;
  kind: ActivityKind;
  name: string;
  count: number;
  errors: number;
  /** Delivery latencies by LATENCY_BOUNDS (subscriptions only). */
  latency: number[] | null;
}

export interface StatsPoint {
  /** Start of the step (ISO 8601). */
  t: string;
  events: number;
  delivered: number;
  failed: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
}

export interface Rates {
  count: number;
  errors: number;
}

/** What the flush needs of a pool (a pg Pool). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** Start of the buckets that make up "the last minute": the current bucket and the five before it. */
export function minuteStart(now = Date.now()): number {
  return Math.floor(now / BUCKET_MS) * BUCKET_MS - 60_000 + BUCKET_MS;
}

/** The steps covering the last `windowMs` (aligned on `stepMs`, the current one last). */
export function stepsOf(windowMs: number, stepMs: number, now = Date.now()): { start: number; end: number } {
  const end = Math.floor(now / stepMs) * stepMs + stepMs;
  return { start: end - Math.ceil(windowMs / stepMs) * stepMs, end };
}

/** Events, deliveries, failures and latency percentiles per step, summed over rows (of any processes), oldest first. */
export function seriesOf(
  rows: Iterable<ActivityRow>,
  windowMs: number,
  stepMs: number,
  now = Date.now(),
): StatsPoint[] {
  const { start, end } = stepsOf(windowMs, stepMs, now);
  const points: (StatsPoint & { hist: number[] })[] = [];
  for (let t = start; t < end; t += stepMs) {
    points.push({
      t: new Date(t).toISOString(),
      events: 0,
      delivered: 0,
      failed: 0,
      latencyP50Ms: null,
      latencyP99Ms: null,
      hist: LATENCY_BOUNDS.map(() => 0),
    });
  }
  for (const r of rows) {
    if (r.bucket < start || r.bucket >= end || r.kind === 'function') continue;
    const p = points[Math.floor((r.bucket - start) / stepMs)]!;
    if (r.kind === 'router') {
      p.events += r.count;
      continue;
    }
    p.delivered += r.count;
    p.failed += r.errors;
    r.latency?.forEach((n, i) => {
      if (i < p.hist.length) p.hist[i]! += n;
    });
  }
  return points.map(({ hist, ...p }) => ({
    ...p,
    latencyP50Ms: percentile(hist, 0.5),
    latencyP99Ms: percentile(hist, 0.99),
  }));
}

/** Counts per `kind:name` over the last minute. */
export function ratesOf(rows: Iterable<ActivityRow>, now = Date.now()): Map<string, Rates> {
  const since = minuteStart(now);
  const rates = new Map<string, Rates>();
  for (const r of rows) {
    if (r.bucket < since) continue;
    const key = `${r.kind}:${r.name}`;
    const sum = rates.get(key) ?? { count: 0, errors: 0 };
    sum.count += r.count;
    sum.errors += r.errors;
    rates.set(key, sum);
  }
  return rates;
}

/** A subscription's rates as the API shows them. */
export function subscriptionRatesOf(
  rates: Map<string, Rates>,
  name: string,
): { deliveredPerMinute: number; errorsPerMinute: number } {
  const r = rates.get(`subscription:${name}`);
  return { deliveredPerMinute: r?.count ?? 0, errorsPerMinute: r?.errors ?? 0 };
}

/** A function's rates as the API shows them. */
export function functionRatesOf(
  rates: Map<string, Rates>,
  name: string,
): { invocationsPerMinute: number; errorsPerMinute: number } {
  const r = rates.get(`function:${name}`);
  return { invocationsPerMinute: r?.count ?? 0, errorsPerMinute: r?.errors ?? 0 };
}

/**
 * Adds counts to rowcast.activity in one statement. Rows are upserted in key order, so that two processes writing
 * the same buckets cannot deadlock; histograms are added element by element.
 */
const UPSERT = `
  INSERT INTO rowcast.activity AS a (bucket, kind, name, count, errors, latency)
  SELECT r.bucket, r.kind, r.name, r.count, r.errors, r.latency
    FROM jsonb_to_recordset($1::jsonb) AS r(bucket timestamptz, kind text, name text, count bigint, errors bigint, latency bigint[])
   ORDER BY r.bucket, r.kind, r.name
  ON CONFLICT (bucket, kind, name) DO UPDATE SET
    count = a.count + EXCLUDED.count,
    errors = a.errors + EXCLUDED.errors,
    latency = CASE WHEN a.latency IS NULL THEN EXCLUDED.latency WHEN EXCLUDED.latency IS NULL THEN a.latency
                   ELSE ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0) FROM unnest(a.latency, EXCLUDED.latency) WITH ORDINALITY AS u(x, y, i) ORDER BY i) END`;

/** Adds rows to rowcast.activity (one statement; what a process's flush does). */
export async function writeActivity(pool: Queryable, rows: Iterable<ActivityRow>): Promise<void> {
  const values = [...rows].map((r) => ({ ...r, bucket: new Date(r.bucket).toISOString() }));
  if (values.length) await pool.query(UPSERT, [JSON.stringify(values)]);
}

export class Activity {
  /** Counts not written yet, by `bucket kind name`. */
  private pending = new Map<string, ActivityRow>();
  /** Counts being written right now (still shown by rows() until written). */
  private writing: Map<string, ActivityRow> | null = null;
  private currentBucket = 0;
  private readonly unsubscribe: (() => void)[];
  /** Databases of the runtimes of this process; counts go to the first (observations are process-wide, so once). */
  private readonly targets: { pool: Queryable; log: Logger }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();
  private flushing = false;
  private failing = false;

  constructor() {
    this.unsubscribe = [
      observe.on('events:routed', (e) => {
        if (e.events) this.add('router', '', e.events, 0, null);
      }),
      observe.on('delivery:attempted', (d) => {
        if (d.outcome === 'delivered') this.add('subscription', d.subscription, 1, 0, d.latencyMs);
        else this.add('subscription', d.subscription, 0, 1, null);
      }),
      observe.on('invocation:finished', (i) => {
        this.add('function', i.function, 1, i.outcome === 'done' ? 0 : 1, null);
      }),
    ];
  }

  /** The counts of this process not yet in the database. */
  rows(): ActivityRow[] {
    return [...this.pending.values(), ...(this.writing?.values() ?? [])];
  }

  /** This process's unwritten activity per step (see seriesOf). */
  series(windowMs: number, stepMs: number, now = Date.now()): StatsPoint[] {
    return seriesOf(this.rows(), windowMs, stepMs, now);
  }

  /** Deliveries acknowledged / failed attempts of a subscription in the last minute (this process, unwritten). */
  subscriptionRates(name: string, now = Date.now()): { deliveredPerMinute: number; errorsPerMinute: number } {
    return subscriptionRatesOf(ratesOf(this.rows(), now), name);
  }

  /** Invocation attempts / failed attempts of a function in the last minute (this process, unwritten). */
  functionRates(name: string, now = Date.now()): { invocationsPerMinute: number; errorsPerMinute: number } {
    return functionRatesOf(ratesOf(this.rows(), now), name);
  }

  /**
   * Writes this process's counts to `pool` every few seconds from now on (a runtime calls this at start). The
   * returned function writes what is left and stops (at stop, after the workers drained).
   */
  attach(pool: Queryable, log: Logger): () => Promise<void> {
    const target = { pool, log };
    this.targets.push(target);
    if (!this.timer) {
      this.timer = setInterval(() => {
        // A failure is logged by write() and the counts kept for the next round.
        if (!this.flushing) this.flush().catch(() => {});
      }, FLUSH_EVERY_MS);
      this.timer.unref();
    }
    return async () => {
      // What was counted while this runtime was the target belongs to its database.
      if (this.targets[0] === target) await this.flush().catch(() => {});
      const i = this.targets.indexOf(target);
      if (i >= 0) this.targets.splice(i, 1);
      if (!this.targets.length && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  /** Writes the counts not written yet (one statement); on failure they are kept for the next try. */
  flush(): Promise<void> {
    const run = this.queue.then(() => this.write());
    this.queue = run.catch(() => {});
    return run;
  }

  close(): void {
    for (const u of this.unsubscribe) u();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private add(kind: ActivityKind, name: string, count: number, errors: number, latencyMs: number | null): void {
    const now = Date.now();
    const bucket = now - (now % BUCKET_MS);
    if (bucket !== this.currentBucket) this.newBucket(bucket);
    const key = `${bucket} ${kind} ${name}`;
    let row = this.pending.get(key);
    if (!row) {
      row = {
        bucket,
        kind,
        name,
        count: 0,
        errors: 0,
        latency: kind === 'subscription' ? LATENCY_BOUNDS.map(() => 0) : null,
      };
      this.pending.set(key, row);
    }
    row.count += count;
    row.errors += errors;
    if (latencyMs !== null && row.latency) row.latency[latencyIndex(latencyMs)]!++;
  }

  /** Drops unwritten counts older than KEEP_MS (only when the database has refused them that long). */
  private newBucket(bucket: number): void {
    this.currentBucket = bucket;
    for (const [key, row] of this.pending) if (row.bucket < bucket - KEEP_MS) this.pending.delete(key);
  }

  private async write(): Promise<void> {
    const target = this.targets[0];
    if (!target || !this.pending.size) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    this.flushing = true;
    try {
      await writeActivity(target.pool, batch.values());
      if (this.failing) target.log.info('activity counts written again');
      this.failing = false;
    } catch (err) {
      for (const [key, row] of batch) this.merge(key, row);
      if (!this.failing)
        target.log.warn(
          { err: (err as Error).message },
          'writing activity counts failed; keeping them for the next try',
        );
      this.failing = true;
      throw err;
    } finally {
      this.writing = null;
      this.flushing = false;
    }
  }

  private merge(key: string, row: ActivityRow): void {
    const into = this.pending.get(key);
    if (!into) {
      this.pending.set(key, row);
      return;
    }
    into.count += row.count;
    into.errors += row.errors;
    row.latency?.forEach((n, i) => into.latency && (into.latency[i]! += n));
  }
}

function latencyIndex(ms: number): number {
  const i = LATENCY_BOUNDS.findIndex((b) => ms <= b);
  return i < 0 ? LATENCY_BOUNDS.length - 1 : i;
}

/** The upper bound of the histogram bucket holding the q-quantile (the last finite bound for the overflow bucket). */
function percentile(hist: number[], q: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= q * total) return Number.isFinite(LATENCY_BOUNDS[i]!) ? LATENCY_BOUNDS[i]! : LATENCY_BOUNDS[i - 1]!;
  }
  return null;
}

let shared: Activity | null = null;

/** The process's activity record (created, and subscribed to observations, on first use). */
export function activity(): Activity {
  shared ??= new Activity();
  return shared;
}

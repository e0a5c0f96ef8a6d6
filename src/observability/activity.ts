import { observe } from './observe.js';

/**
 * Recent activity of this process, in memory and bounded: per-10-second buckets over the last hour (events
 * routed, deliveries delivered and failed, delivery latencies) for charts, and per-subscription / per-function
 * counts over the last minute for rates. Fed by `observe`; started on first use.
 */
const BUCKET_MS = 10_000;
const KEEP_MS = 3_600_000;
const BUCKETS = KEEP_MS / BUCKET_MS;
/** Latency histogram bounds in ms (log-spaced); percentiles are read from it, as Prometheus does. */
const LATENCY_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000, Infinity];

interface Bucket {
  /** Start of the bucket (ms since epoch). */
  t: number;
  events: number;
  delivered: number;
  failed: number;
  latency: number[];
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

/** Per-name counts over the last minute, in 60 one-second slots. */
class MinuteCounter {
  private readonly slots = new Map<string, { second: number; counts: Float64Array }>();

  add(name: string, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    let entry = this.slots.get(name);
    if (!entry) {
      entry = { second, counts: new Float64Array(60) };
      this.slots.set(name, entry);
    }
    this.advance(entry, second);
    entry.counts[second % 60]! += 1;
  }

  perMinute(name: string, now = Date.now()): number {
    const entry = this.slots.get(name);
    if (!entry) return 0;
    this.advance(entry, Math.floor(now / 1000));
    let sum = 0;
    for (const c of entry.counts) sum += c;
    return sum;
  }

  private advance(entry: { second: number; counts: Float64Array }, second: number): void {
    if (second <= entry.second) return;
    if (second - entry.second >= 60) entry.counts.fill(0);
    else for (let s = entry.second + 1; s <= second; s++) entry.counts[s % 60] = 0;
    entry.second = second;
  }
}

export class Activity {
  private readonly buckets: Bucket[] = [];
  private readonly rates = new MinuteCounter();
  private readonly unsubscribe: (() => void)[];

  constructor() {
    this.unsubscribe = [
      observe.on('events:routed', (e) => {
        this.bucket().events += e.events;
      }),
      observe.on('delivery:attempted', (d) => {
        const b = this.bucket();
        if (d.outcome === 'delivered') {
          b.delivered++;
          this.rates.add(`delivered:${d.subscription}`);
          if (d.latencyMs !== null) b.latency[latencyIndex(d.latencyMs)]!++;
        } else {
          b.failed++;
          this.rates.add(`deliveryErrors:${d.subscription}`);
        }
      }),
      observe.on('invocation:finished', (i) => {
        this.rates.add(`invocations:${i.function}`);
        if (i.outcome !== 'done') this.rates.add(`invocationErrors:${i.function}`);
      }),
    ];
  }

  /** Deliveries acknowledged / failed attempts of a subscription in the last minute (this process). */
  subscriptionRates(name: string): { deliveredPerMinute: number; errorsPerMinute: number } {
    return { deliveredPerMinute: this.rates.perMinute(`delivered:${name}`), errorsPerMinute: this.rates.perMinute(`deliveryErrors:${name}`) };
  }

  /** Invocation attempts / failed attempts of a function in the last minute (this process). */
  functionRates(name: string): { invocationsPerMinute: number; errorsPerMinute: number } {
    return { invocationsPerMinute: this.rates.perMinute(`invocations:${name}`), errorsPerMinute: this.rates.perMinute(`invocationErrors:${name}`) };
  }

  /** The last `windowMs` in steps of `stepMs` (both multiples of 10 s, window ≤ 1 h), oldest first. */
  series(windowMs: number, stepMs: number, now = Date.now()): StatsPoint[] {
    const end = Math.floor(now / stepMs) * stepMs + stepMs;
    const start = end - Math.ceil(windowMs / stepMs) * stepMs;
    const points: (StatsPoint & { hist: number[] })[] = [];
    for (let t = start; t < end; t += stepMs) {
      points.push({ t: new Date(t).toISOString(), events: 0, delivered: 0, failed: 0, latencyP50Ms: null, latencyP99Ms: null, hist: LATENCY_BOUNDS.map(() => 0) });
    }
    for (const b of this.buckets) {
      if (b.t < start || b.t >= end) continue;
      const p = points[Math.floor((b.t - start) / stepMs)]!;
      p.events += b.events;
      p.delivered += b.delivered;
      p.failed += b.failed;
      b.latency.forEach((n, i) => (p.hist[i]! += n));
    }
    return points.map(({ hist, ...p }) => ({ ...p, latencyP50Ms: percentile(hist, 0.5), latencyP99Ms: percentile(hist, 0.99) }));
  }

  close(): void {
    for (const u of this.unsubscribe) u();
  }

  private bucket(now = Date.now()): Bucket {
    const t = Math.floor(now / BUCKET_MS) * BUCKET_MS;
    const last = this.buckets.at(-1);
    if (last && last.t === t) return last;
    const b: Bucket = { t, events: 0, delivered: 0, failed: 0, latency: LATENCY_BOUNDS.map(() => 0) };
    this.buckets.push(b);
    while (this.buckets.length > BUCKETS || (this.buckets[0] && this.buckets[0].t < t - KEEP_MS)) this.buckets.shift();
    return b;
  }
}

function latencyIndex(ms: number): number {
  return LATENCY_BOUNDS.findIndex((b) => ms <= b);
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

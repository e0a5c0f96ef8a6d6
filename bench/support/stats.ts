/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Every repetition's value, in run order. */
  values: number[];
}

export function spread(values: readonly number[]): Spread {
  return { median: percentile(values, 50), min: Math.min(...values), max: Math.max(...values), values: [...values] };
}

/** Least-squares slope of [x, y] points (y per unit of x); undefined for fewer than two distinct x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number | undefined {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return n < 2 || sxx === 0 ? undefined : points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
}

export interface LatencySummary {
  samples: number;
  /** Events whose arrival was never seen. */
  missing: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Latency of each event: arrival − commit (ms). An arrival processed before its writer saw COMMIT return (both
 * are on one machine; the notice can win the race) counts as 0.
 */
export function latencies(
  commits: ReadonlyMap<number, number>,
  arrivals: ReadonlyMap<number, number>,
): { values: number[]; missing: number } {
  const values: number[] = [];
  let missing = 0;
  for (const [id, committed] of commits) {
    const at = arrivals.get(id);
    if (at === undefined) missing++;
    else values.push(Math.max(0, at - committed));
  }
  return { values, missing };
}

export function summarizeLatency(values: readonly number[], missing: number): LatencySummary {
  return {
    samples: values.length,
    missing,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: values.length ? values.reduce((a, b) => (b > a ? b : a)) : Number.NaN,
  };
}

/**
 * A latency run's figures: its consecutive windows are the repetitions (each gives its own percentiles), and the
 * whole run's summary goes in the figure's note.
 */
export function windowedLatency(
  commits: ReadonlyMap<number, number>,
  arrivals: ReadonlyMap<number, number>,
  windows: number,
): { windows: LatencySummary[]; overall: LatencySummary } {
  let start = Infinity;
  let end = -Infinity;
  for (const t of commits.values()) [start, end] = [Math.min(start, t), Math.max(end, t)];
  const windowMs = (end - start) / windows + 1e-6;
  const perWindow = Array.from({ length: windows }, () => new Map<number, number>());
  for (const [id, t] of commits) perWindow[Math.min(windows - 1, Math.floor((t - start) / windowMs))]!.set(id, t);
  const summarize = (c: ReadonlyMap<number, number>) => {
    const l = latencies(c, arrivals);
    return summarizeLatency(l.values, l.missing);
  };
  return { windows: perWindow.map(summarize), overall: summarize(commits) };
}

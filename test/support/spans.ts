/** The most spans (handler runs, from the overlap fixture's results) that were running at one instant. */
export function mostAtOnce(spans: Array<{ start: number; end: number }>): number {
  // Sweep over start and end times; at equal times an end comes first (back-to-back runs do not overlap).
  const edges = spans
    .flatMap((s) => [
      { t: s.start, d: 1 },
      { t: s.end, d: -1 },
    ])
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let running = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (running += e.d));
  return most;
}

/*
 * When an endpoint that keeps failing is disabled (a subscription's `disableAfter`, off by default), as Svix
 * disables endpoints after days of failure. No I/O here: this is the whole decision; endpoint-health.ts tracks
 * the health it reads and acts on it.
 */

/** disableAfter as stored (durations in milliseconds): trips on whichever limit is reached first. */
export interface DisablePolicy {
  /** Disable once every attempt has failed for this long (no success in between). */
  failingFor?: number | null;
  /** Disable once this many deliveries in a row went dead (no success in between). */
  deadDeliveries?: number | null;
}

/** A subscription's health, as the database keeps it (reset by a success and by `rowcast resume`). */
export interface EndpointHealth {
  /** Since when its attempts fail with no success in between; null while it is healthy. */
  failingSince: Date | null;
  /** Deliveries that went dead since its last success. */
  deadInRow: number;
}

export type DisableCause = 'failing_for' | 'dead_deliveries';

export type DisableDecision = { disable: false } | { disable: true; cause: DisableCause; reason: string };

/** "5d 3h", "2h 5m", "40s", "250ms": how long, for people. */
export function formatSpan(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n && parts.length < 2) parts.push(`${n}${unit}`);
    if (parts.length) rest -= n * size;
  }
  return parts.join(' ');
}

/**
 * Whether a subscription in this health is disabled under this policy at `now` (the database's clock, as
 * failingSince). A limit that is not set never trips; with neither set (no policy), nothing does.
 */
export function decideDisable(
  health: EndpointHealth,
  policy: DisablePolicy | null | undefined,
  now: Date,
): DisableDecision {
  if (!policy || !health.failingSince) return { disable: false };
  const failingMs = now.getTime() - health.failingSince.getTime();
  const since = health.failingSince.toISOString();
  if (policy.deadDeliveries != null && health.deadInRow >= policy.deadDeliveries) {
    return {
      disable: true,
      cause: 'dead_deliveries',
      reason: `disabled by disableAfter: ${health.deadInRow} deliveries in a row went dead (limit ${policy.deadDeliveries}), failing since ${since}`,
    };
  }
  if (policy.failingFor != null && failingMs >= policy.failingFor) {
    return {
      disable: true,
      cause: 'failing_for',
      reason: `disabled by disableAfter: every attempt failed for ${formatSpan(failingMs)} since ${since} (limit ${formatSpan(policy.failingFor)})`,
    };
  }
  return { disable: false };
}

import type { DeliveryPolicy } from '../config/subscription-schema.js';

/** The part of a delivery policy (or a function's settings) that decides retries. */
export type RetryPolicy = Pick<DeliveryPolicy, 'maxAttempts' | 'minDelay' | 'maxDelay' | 'maxRetryAfter'>;

/** What happens to a delivery or an invocation after a failed attempt. No I/O here: this is the whole decision. */
export type RetryDecision = { state: 'pending'; delayMs: number } | { state: 'dead' };

/**
 * Exponential backoff: minDelay doubling per attempt, capped at maxDelay, with "equal jitter" (a random point in
 * the upper half) so that retries of a burst spread out but never come back immediately.
 */
export function backoffDelay(
  attempts: number,
  policy: Pick<DeliveryPolicy, 'minDelay' | 'maxDelay'>,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelay, policy.minDelay * 2 ** Math.max(0, attempts - 1));
  return Math.round(base / 2 + random() * (base / 2));
}

/**
 * attempts: how many attempts have been made, the failed one included.
 * retryAfterMs: the endpoint's Retry-After (429/503), honoured up to policy.maxRetryAfter and never below
 * policy.minDelay (`Retry-After: 0` or a past date would otherwise spend every remaining attempt at once).
 */
export function decideAfterFailure(
  attempts: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random?: () => number,
): RetryDecision {
  if (attempts >= policy.maxAttempts) return { state: 'dead' };
  if (retryAfterMs !== undefined)
    return { state: 'pending', delayMs: Math.max(policy.minDelay, Math.min(retryAfterMs, policy.maxRetryAfter)) };
  return { state: 'pending', delayMs: backoffDelay(attempts, policy, random) };
}

/** Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

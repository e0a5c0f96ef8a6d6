/*
 * What becomes of a delivery after an attempt: the whole decision, with no I/O. The delivery worker sends, asks
 * decideOutcome, and carries out the answer (writes the result, arms a retry timer, disables the subscription).
 */
import type { SendOutcome } from './sink.js';
import { decideAfterFailure, type RetryPolicy } from './retry-policy.js';

/** The subscription as the decision needs it: its name, and where its dead deliveries are also published. */
export interface OutcomeSubscription {
  name: string;
  deadLetterTopic: string | null;
}

/**
 * What the worker does with the delivery:
 * - done: acknowledged;
 * - retry: pending again after delayMs (backoff, or the endpoint's Retry-After floored at minDelay);
 * - disable: the endpoint said it is gone (HTTP 410): the subscription is disabled and the delivery stays pending,
 *   due at once, for when it is resumed — whatever its disableAfter policy (that one is for endpoints that fail);
 * - dead: never sent again until redriven; deadLetterTopic, when set, receives a copy;
 * - release: nothing was sent (the subscription is not loaded in this process): handed back without counting an
 *   attempt, for a process that has it.
 */
export type DeliveryDecision =
  | { action: 'done' }
  | { action: 'retry'; delayMs: number; error: string }
  | { action: 'disable'; error: string }
  | { action: 'dead'; error: string; deadLetterTopic: string | null }
  | { action: 'release'; error: string };

/** An attempt's outcome: what the sink said, or `unloaded` when it was not sent (no such subscription here). */
export type AttemptOutcome = SendOutcome | { kind: 'unloaded' };

/**
 * attempt: the attempt that just ended (1 for the first). policy: the subscription's delivery policy, undefined
 * when the subscription is not loaded. random: the backoff's jitter source (tests pass a fixed one).
 */
export function decideOutcome(
  outcome: AttemptOutcome,
  attempt: number,
  policy: RetryPolicy | undefined,
  subscription: OutcomeSubscription,
  random?: () => number,
): DeliveryDecision {
  if (outcome.kind === 'unloaded' || (outcome.kind === 'retry' && !policy)) {
    return { action: 'release', error: `subscription ${subscription.name} is not loaded in this process` };
  }
  switch (outcome.kind) {
    case 'done':
      return { action: 'done' };
    case 'dead':
      return { action: 'dead', error: outcome.error, deadLetterTopic: subscription.deadLetterTopic };
    case 'disable':
      return { action: 'disable', error: outcome.error };
    case 'retry': {
      const decision = decideAfterFailure(attempt, policy!, outcome.retryAfterMs, random);
      if (decision.state === 'dead')
        return {
          action: 'dead',
          error: `${outcome.error} (after ${attempt} attempts)`,
          deadLetterTopic: subscription.deadLetterTopic,
        };
      return { action: 'retry', delayMs: decision.delayMs, error: outcome.error };
    }
  }
}

/** A topic's large-message rules, as a claimed delivery carries them. */
export interface SizeLimits {
  maxMessageSize: number;
  largeMessages: 'reject' | 'claim-check';
}

/** How a message of `size` bytes goes out under its topic's rules: as it is, as a claim-check link, or not at all (dead). */
export type SizeDecision = { send: 'message' } | { send: 'claim-check' } | { send: 'none'; error: string };

export function decideSize(size: number, limits: SizeLimits, topic: string): SizeDecision {
  if (size <= limits.maxMessageSize) return { send: 'message' };
  if (limits.largeMessages === 'claim-check') return { send: 'claim-check' };
  return {
    send: 'none',
    error: `message of ${size} bytes is over topic ${topic}'s maxMessageSize (${limits.maxMessageSize} bytes): raise it or set largeMessages: 'claim-check', apply, then redrive`,
  };
}

/**
 * decideSize for a body as text. UTF-8 takes at most 3 bytes per UTF-16 unit, so a body under a third of the limit
 * in length fits unmeasured: Buffer.byteLength scanned every body once per delivery.
 */
export function decideBodySize(body: string, limits: SizeLimits, topic: string): SizeDecision {
  if (body.length * 3 <= limits.maxMessageSize) return { send: 'message' };
  return decideSize(Buffer.byteLength(body), limits, topic);
}

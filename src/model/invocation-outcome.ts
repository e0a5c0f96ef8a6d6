/*
 * What becomes of a function invocation after a failed run (or before running one that is too old): the whole
 * decision, with no I/O. The function worker runs the handler, asks, and records the answer.
 */
import { decideAfterFailure } from '../subscriptions/retry-policy.js';

/** A function's retry settings (FunctionConfig's). */
export interface InvocationPolicy {
  maxAttempts: number;
  minDelay: number;
  maxDelay: number;
  /** How old an invocation may get (since it was queued) and still be run or retried. */
  maxEventAge: number;
}

/** The invocation as the decision needs it. */
export interface InvocationAttempt {
  /** The attempt that just ran (1 for the first). */
  attempt: number;
  /** How old the invocation was when claimed (ms). */
  ageMs: number;
  /** A caller waits for the answer (RequestResponse): it gets the error, as from Lambda, with no retry. */
  synchronous: boolean;
}

/** retry: run again after delayMs; fail: final, recorded and sent to the on-failure topic with its condition. */
export type InvocationDecision = { action: 'retry'; delayMs: number } | { action: 'fail'; condition: 'RetriesExhausted' | 'EventAgeExceeded' };

/** Whether a claimed invocation is run at all: not once it is older than maxEventAge. */
export function tooOldToRun(ageMs: number, policy: Pick<InvocationPolicy, 'maxEventAge'>): boolean {
  return ageMs > policy.maxEventAge;
}

/**
 * After a failed run: retried with backoff while attempts are left and the retry would still start within
 * maxEventAge; otherwise failed, as RetriesExhausted or EventAgeExceeded. random: the backoff's jitter source.
 */
export function decideInvocationFailure(inv: InvocationAttempt, policy: InvocationPolicy, random?: () => number): InvocationDecision {
  const decision = decideAfterFailure(inv.attempt, { ...policy, maxAttempts: inv.synchronous ? 1 : policy.maxAttempts, maxRetryAfter: policy.maxDelay }, undefined, random);
  if (decision.state === 'dead') return { action: 'fail', condition: 'RetriesExhausted' };
  if (decision.delayMs + inv.ageMs > policy.maxEventAge) return { action: 'fail', condition: 'EventAgeExceeded' };
  return { action: 'retry', delayMs: decision.delayMs };
}

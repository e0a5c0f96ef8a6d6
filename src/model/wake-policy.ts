/**
 * The router's wake-up decision after each routing pass, kept pure so that it is tested without timing (the
 * router, src/routing/event-router.ts, does the I/O). Capture triggers NOTIFY only while the router's sleeping
 * flag is set; each flip of the flag is a write, and each NOTIFY costs the writer a cluster-wide lock at commit.
 * So a trickle keeps the flag set (one routing statement per wake-up) and load clears it (no NOTIFY per commit).
 */

/** Passes in a row that find a NOTIFY already waiting before the flag is cleared. */
export const CROWDED_PASSES = 3;

/**
 * Empty passes in a row, after load, before the flag is set again (the loop waits 1, then 2 ms between them): a
 * router that catches up with busy writers finds nothing between two of their commits, and setting the flag there
 * made them NOTIFY until it counted the load again (row-level capture of 100-row statements from 8 writers: a NOTIFY
 * on over half of their commits). A trickle's commits come further apart, and it still sleeps on the flag.
 */
export const REST_PASSES = 2;

export interface WakeState {
  /** The sleeping flag as this process last wrote it. */
  flag: boolean;
  /** Since the flag was set, no writer that missed it can still commit unseen. */
  quiet: boolean;
  /** The last sleep ended by a wake-up (a NOTIFY), not by the poll interval. */
  kicked: boolean;
  /** Passes in a row, flag set, that found events and a NOTIFY already waiting. */
  crowded: number;
  /** Passes in a row, flag clear, that found nothing. */
  rested: number;
}

export interface RoutingPass {
  /** Events this pass routed. */
  events: number;
  batchSize: number;
  /** Another process holds the routing lock. */
  busy: boolean;
  /** A NOTIFY arrived while the pass ran. */
  notifyWaiting: boolean;
}

/**
 * - `yield`: another process routes (and will route what commits next): clear the flag, look again after the poll
 *   interval.
 * - `sleep`: a trickle: keep the flag and wait for the next NOTIFY.
 * - `route`: load: clear the flag, so writers commit without NOTIFY, and route again at once.
 * - `rest`: nothing was routed after load: keep the flag clear and look again shortly (REST_PASSES times).
 * - `idle`: nothing was routed: set the flag, make sure no writer missed it, then sleep.
 */
export type WakeStep = 'yield' | 'sleep' | 'route' | 'rest' | 'idle';

/** The step after a routing pass, and the counts of passes in a row it leaves. */
export function nextWakeStep(state: WakeState, pass: RoutingPass): { step: WakeStep; crowded: number; rested: number } {
  if (pass.busy) return { step: 'yield', crowded: state.crowded, rested: 0 };
  if (pass.events === 0) {
    if (!state.flag && state.rested < REST_PASSES) return { step: 'rest', crowded: 0, rested: state.rested + 1 };
    return { step: 'idle', crowded: 0, rested: 0 };
  }
  // Every writer since the flag was set saw it and notifies, and this pass took all that was visible. Events found
  // by the poll instead mean the flag did not reach a writer (its row deleted, say): clearing it here makes the
  // idle step write it again.
  if (state.flag && state.quiet && state.kicked && pass.events < pass.batchSize) {
    // A NOTIFY already waiting after several passes in a row: commits arrive faster than routing passes.
    const crowded = pass.notifyWaiting ? state.crowded + 1 : 0;
    if (crowded < CROWDED_PASSES) return { step: 'sleep', crowded, rested: 0 };
  }
  return { step: 'route', crowded: 0, rested: 0 };
}

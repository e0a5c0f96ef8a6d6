/**
 * The router's wake-up decision after each routing pass, kept pure so that it is tested without timing (the
 * router, src/routing/event-router.ts, does the I/O). Capture triggers NOTIFY only while the router's sleeping
 * flag is set; each flip of the flag is a write, and each NOTIFY costs the writer a cluster-wide lock at commit.
 * So a trickle keeps the flag set (one routing statement per wake-up) and load clears it (no NOTIFY per commit).
 */

/** Passes in a row that find a NOTIFY already waiting before the flag is cleared. */
export const CROWDED_PASSES = 3;

export interface WakeState {
  /** The sleeping flag as this process last wrote it. */
  flag: boolean;
  /** Since the flag was set, no writer that missed it can still commit unseen. */
  quiet: boolean;
  /** The last sleep ended by a wake-up (a NOTIFY), not by the poll interval. */
  kicked: boolean;
  /** Passes in a row, flag set, that found events and a NOTIFY already waiting. */
  crowded: number;
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
 * - `idle`: nothing was routed: set the flag, make sure no writer missed it, then sleep.
 */
export type WakeStep = 'yield' | 'sleep' | 'route' | 'idle';

/** The step after a routing pass and the crowded count it leaves. */
export function nextWakeStep(state: WakeState, pass: RoutingPass): { step: WakeStep; crowded: number } {
  if (pass.busy) return { step: 'yield', crowded: state.crowded };
  if (pass.events === 0) return { step: 'idle', crowded: 0 };
  // Every writer since the flag was set saw it and notifies, and this pass took all that was visible. Events found
  // by the poll instead mean the flag did not reach a writer (its row deleted, say): clearing it here makes the
  // idle step write it again.
  if (state.flag && state.quiet && state.kicked && pass.events < pass.batchSize) {
    // A NOTIFY already waiting after several passes in a row: commits arrive faster than routing passes.
    const crowded = pass.notifyWaiting ? state.crowded + 1 : 0;
    if (crowded < CROWDED_PASSES) return { step: 'sleep', crowded };
  }
  return { step: 'route', crowded: 0 };
}

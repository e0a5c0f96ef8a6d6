import { hostname } from 'node:os';
import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import type { DirectClaimant } from './fan-out.js';
import { type InvocationClaimant, type RouteResult, routeEvents } from './route-events.js';
import type { Listener } from '../queue/listener.js';
import { nextWakeStep, type WakeState } from '../model/wake-policy.js';
import { WakeSignal } from '../queue/wake-signal.js';

export interface EventRouterOptions {
  id: string;
  batchSize: number;
  pollInterval: number;
}

/**
 * Routes captured events to topic messages and deliveries (or function invocations), as fast as they commit,
 * and wakes the function worker for invocations queued by SQL.
 *
 * Wake-ups: capture triggers NOTIFY only while a dispatcher has its `sleeping` flag set. Before it sleeps the
 * router sets the flag, then makes sure no writer that read the flag before it was set is still in flight (such
 * a writer holds a RowExclusiveLock on rowcast.events, since the trigger inserts before it reads the flag), then
 * routes once more. Only then does it wait — for a NOTIFY, or at most the poll interval. What follows each pass
 * (a trickle keeps the flag, load clears it, another process routing makes this one yield) is decided by
 * `nextWakeStep` (wake-policy.ts).
 */
export class EventRouter {
  private readonly signal = new WakeSignal();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private readonly wakeState: WakeState = { flag: false, quiet: false, kicked: true, crowded: 0 };
  /**
   * This process's delivery worker, if it takes deliveries straight from routing: the routing statement leases
   * it the new deliveries it has free slots for (no claim round trip between routing and sending).
   */
  deliveries: DirectClaimant | null = null;
  /** This process's function worker, likewise: new invocations for the slots it holds free are leased to it. */
  functions: InvocationClaimant | null = null;

  constructor(
    private readonly pool: Pool,
    listener: Listener,
    private readonly options: EventRouterOptions,
    private readonly log: Logger,
    private readonly onRouted: (routed: RouteResult) => void,
  ) {
    listener.on('wake', () => this.signal.kick());
  }

  async start(): Promise<void> {
    // Rows of dispatchers that died without saying goodbye would keep writers notifying for nothing.
    await this.pool.query(`DELETE FROM rowcast.dispatchers WHERE heartbeat_at < now() - interval '2 minutes'`);
    await this.pool.query(
      'INSERT INTO rowcast.dispatchers (id, backend_pid, host) VALUES ($1, pg_backend_pid(), $2) ON CONFLICT (id) DO NOTHING',
      [this.options.id, hostname()],
    );
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.signal.kick();
    await this.loop;
    await this.pool.query('DELETE FROM rowcast.dispatchers WHERE id = $1', [this.options.id]).catch(() => {});
  }

  /** Events were written in this process (logical capture): route them now rather than at the next NOTIFY or poll. */
  wake(): void {
    this.signal.kick();
  }

  /** Called on an interval by the runtime: keeps the row fresh so it is not taken for a dead process's. */
  async heartbeat(): Promise<void> {
    await this.pool.query('UPDATE rowcast.dispatchers SET heartbeat_at = now() WHERE id = $1', [this.options.id]);
  }

  private async setFlag(sleeping: boolean): Promise<void> {
    await this.pool.query(
      `INSERT INTO rowcast.dispatchers (id, backend_pid, host, sleeping) VALUES ($1, pg_backend_pid(), $2, $3)
       ON CONFLICT (id) DO UPDATE SET sleeping = EXCLUDED.sleeping, heartbeat_at = now()`,
      [this.options.id, hostname(), sleeping],
    );
    this.wakeState.flag = sleeping;
  }

  /**
   * Is any other transaction holding rowcast.events or rowcast.invocations for writing — a writer (a capture
   * trigger, aws_lambda.invoke) that may not have seen the flag?
   */
  private async writersInFlight(): Promise<boolean> {
    const { rows } = await this.pool.query(
      `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND relation IN ('rowcast.events'::regclass, 'rowcast.invocations'::regclass)
                        AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()) AS busy`,
    );
    return rows[0].busy as boolean;
  }

  private async run(): Promise<void> {
    const state = this.wakeState;
    let shortWait = 2;
    let errorDelay = 100;
    while (!this.stopping) {
      try {
        const direct = {
          deliveries: this.deliveries?.directClaim(),
          invocations: this.functions?.directInvocationClaim(),
        };
        const routed = await routeEvents(this.pool, this.options.batchSize, direct);
        if (direct.deliveries && (routed.claimed.length || routed.leased.length))
          this.deliveries!.adoptClaimed(routed.claimed, direct.deliveries, routed.leased);
        if (direct.invocations && routed.claimedInvocations.length)
          this.functions!.adoptInvocations(routed.claimedInvocations, direct.invocations);
        // Every routed batch is reported: the runtime wakes whom it concerns (and counts the events).
        if (routed.events) this.onRouted(routed);
        errorDelay = 100;
        const { step, crowded } = nextWakeStep(state, {
          events: routed.events,
          batchSize: this.options.batchSize,
          busy: routed.busy,
          notifyWaiting: this.signal.kicked,
        });
        state.crowded = crowded;
        if (step === 'sleep') {
          state.kicked = await this.signal.wait(this.options.pollInterval);
          continue;
        }
        if (step === 'yield' || step === 'route') {
          if (state.flag) {
            await this.setFlag(false);
            state.quiet = false;
          }
          if (step === 'yield') await this.signal.wait(this.options.pollInterval);
          continue;
        }
        if (!state.flag) {
          await this.setFlag(true);
          state.quiet = false;
        }
        if (!state.quiet) {
          if (await this.writersInFlight()) {
            await this.signal.wait(shortWait);
            shortWait = Math.min(shortWait * 2, this.options.pollInterval);
            continue;
          }
          state.quiet = true;
          shortWait = 2;
          continue; // route once more: whatever committed before the check is visible now
        }
        state.kicked = await this.signal.wait(this.options.pollInterval);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'routing failed; retrying');
        state.flag = false; // unknown after an error: set again before sleeping
        state.quiet = false;
        await this.signal.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }
}

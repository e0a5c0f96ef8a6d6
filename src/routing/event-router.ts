import { hostname } from 'node:os';
import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import type { DirectClaimant } from './fan-out.js';
import { type InvocationClaimant, type RouteResult, routeEvents } from './route-events.js';
import type { Listener } from '../queue/listener.js';
import { SleepingFlag } from '../queue/sleeping-flag.js';
import { WakeSignal } from '../queue/wake-signal.js';

export interface EventRouterOptions {
  id: string;
  batchSize: number;
  pollInterval: number;
}

/**
 * Routes captured events to topic messages and deliveries (or function invocations), as fast as they commit.
 *
 * Wake-ups: capture triggers NOTIFY only while a dispatcher has its `sleeping` flag set; the flag, the check that no
 * writer missed it, and what follows each pass (a trickle keeps the flag, load clears it, another process routing
 * makes this one yield) are SleepingFlag's (queue/sleeping-flag.ts).
 */
export class EventRouter {
  private readonly signal = new WakeSignal();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private readonly flag: SleepingFlag;
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
    this.flag = new SleepingFlag(pool, {
      write: (sleeping) => this.writeFlag(sleeping),
      // A capture trigger that may not have seen the flag. (rowcast.invoke reads it too, but what it queues is the
      // function worker's, whose own flag waits for writers of rowcast.invocations.)
      writtenBy: ['rowcast.events'],
      pollInterval: options.pollInterval,
    });
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

  /** Writes this router's flag; the row is this process's, made again if it was deleted as a dead process's. */
  private async writeFlag(sleeping: boolean): Promise<boolean> {
    await this.pool.query(
      `INSERT INTO rowcast.dispatchers (id, backend_pid, host, sleeping) VALUES ($1, pg_backend_pid(), $2, $3)
       ON CONFLICT (id) DO UPDATE SET sleeping = EXCLUDED.sleeping, heartbeat_at = now()`,
      [this.options.id, hostname(), sleeping],
    );
    return true;
  }

  private async run(): Promise<void> {
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
        const next = await this.flag.afterPass({
          events: routed.events,
          batchSize: this.options.batchSize,
          busy: routed.busy,
          notifyWaiting: this.signal.kicked,
        });
        if (next === 'sleep') this.flag.kicked = await this.signal.wait(this.options.pollInterval);
        else if (next !== 'load' && next > 0) await this.signal.wait(next);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'routing failed; retrying');
        this.flag.forget();
        await this.signal.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }
}

import { nextWakeStep, type RoutingPass, type WakeState } from '../model/wake-policy.js';
import type { Pool } from '../store/pool.js';

export interface SleepingFlagOptions {
  /**
   * Writes the flag (in rowcast.dispatchers); false if it could not be written (the process's row is gone): then
   * nobody will notify this loop, so it polls.
   */
  write: (sleeping: boolean) => Promise<boolean>;
  /** The tables whose writers read the flag after their insert: a writer in flight may have missed it. */
  writtenBy: string[];
  pollInterval: number;
}

/**
 * What a loop does after a pass: `sleep` until kicked or the poll interval (then set `kicked`); `load`: work comes
 * faster than passes and nobody announces it, so pass again soon; or wait this long in ms (0: pass once more at
 * once).
 */
export type AfterPass = 'sleep' | 'load' | number;

/**
 * A loop's sleeping flag and the protocol that makes it safe (docs/architecture.md, Wake-ups), shared by the router
 * (capture triggers and rowcast.invoke NOTIFY while it is set) and the function worker (rowcast.invoke only). Before
 * the loop sleeps it (1) sets the flag, (2) waits while another transaction holds one of `writtenBy` for writing —
 * a writer that read the flag before it was set, since writers insert before they read it — and (3) passes once
 * more; only then (4) it sleeps. A trickle keeps the flag set and load clears it (`nextWakeStep`).
 */
export class SleepingFlag {
  private readonly state: WakeState = { flag: false, quiet: false, kicked: true, crowded: 0, rested: 0 };
  private shortWait = 2;

  constructor(
    private readonly pool: Pool,
    private readonly options: SleepingFlagOptions,
  ) {}

  /** The flag is set and no writer can have missed it: new work will be announced. */
  get announced(): boolean {
    return this.state.flag && this.state.quiet;
  }

  /** The last sleep ended by a kick (a NOTIFY), not by the poll interval. */
  set kicked(kicked: boolean) {
    this.state.kicked = kicked;
  }

  /** Decides, and writes, what follows a pass. */
  async afterPass(pass: RoutingPass): Promise<AfterPass> {
    const state = this.state;
    const { step, crowded, rested } = nextWakeStep(state, pass);
    state.crowded = crowded;
    state.rested = rested;
    if (step === 'sleep') return 'sleep';
    if (step === 'rest') return 2 ** (rested - 1);
    if (step === 'yield' || step === 'route') {
      if (state.flag) await this.write(false);
      return step === 'yield' ? this.options.pollInterval : 'load';
    }
    // A row not there yet (the function worker starts before the router makes it) is looked for again soon.
    if (!state.flag && !(await this.write(true))) return this.backOff();
    if (state.quiet) return 'sleep';
    if (await this.writersInFlight()) return this.backOff();
    state.quiet = true;
    this.shortWait = 2;
    return 0; // pass once more: whatever committed before the check is visible now
  }

  private backOff(): number {
    const wait = this.shortWait;
    this.shortWait = Math.min(this.shortWait * 2, this.options.pollInterval);
    return wait;
  }

  /** After an error the flag's state is unknown: it is written again before the next sleep. */
  forget(): void {
    this.state.flag = false;
    this.state.quiet = false;
  }

  private async write(sleeping: boolean): Promise<boolean> {
    const written = await this.options.write(sleeping);
    this.state.flag = sleeping && written;
    this.state.quiet = false;
    return written;
  }

  private async writersInFlight(): Promise<boolean> {
    const { rows } = await this.pool.query(
      `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND relation = ANY ($1::regclass[])
                        AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()) AS busy`,
      [this.options.writtenBy],
    );
    return rows[0].busy as boolean;
  }
}

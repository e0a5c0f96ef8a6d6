import type { Logger } from '../observability/logger.js';
import { WakeSignal } from './wake-signal.js';

/** A unit of leased work: `group` is what limits apply to (a subscription, a function). */
export interface Claimed {
  key: string;
  group: string;
}

export interface ClaimLoopOptions {
  /** Items in flight in this process, over all groups. */
  concurrency: number;
  pollInterval: number;
  /** Largest claim per group per round trip. */
  maxClaim: number;
}

/**
 * The loop shared by the delivery and function workers: claim leased work per group within the free slots
 * (per process and per group), process each item concurrently, claim again when slots free up while the backlog
 * lasts, otherwise sleep until kicked or the poll interval passes. In-flight work and memory stay bounded by
 * `concurrency`, however large the backlog.
 */
export abstract class ClaimLoop<C extends Claimed> {
  protected readonly signal = new WakeSignal();
  private readonly inFlight = new Map<string, { item: C; controller: AbortController }>();
  private readonly perGroup = new Map<string, number>();
  /** Groups whose last claim filled every slot asked for: they probably have more waiting. */
  private readonly backlogged = new Set<string>();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private rotation = 0;

  constructor(protected readonly loopOptions: ClaimLoopOptions, protected readonly log: Logger) {}

  /** Most items each group may have in flight in this process now (groups that are paused are absent). */
  protected abstract limits(): Map<string, number>;
  /** Claims up to n items per group, leased to this process. */
  protected abstract claim(wanted: Map<string, number>): Promise<C[]>;
  /** Does the work and records its outcome; an aborted signal means shutdown: leave the item for release(). */
  protected abstract process(item: C, signal: AbortSignal): Promise<void>;
  /** Hands items whose processing was aborted by shutdown back to the database. */
  protected abstract release(items: C[]): Promise<void>;
  /** Called once in-flight work has settled during stop(). */
  protected async afterDrain(): Promise<void> {}

  get activeCount(): number {
    return this.inFlight.size;
  }

  startLoop(): void {
    this.loop = this.run();
  }

  /** New work may be waiting. */
  wake(): void {
    this.signal.kick();
  }

  /** Stops claiming, lets in-flight work finish for up to graceMs, then aborts the rest and releases it. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.signal.kick();
    await this.loop;
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const leftover = [...this.inFlight.values()];
    for (const f of leftover) f.controller.abort();
    while (this.inFlight.size) await new Promise((r) => setTimeout(r, 5));
    await this.afterDrain();
    await this.release(leftover.map((f) => f.item)).catch((err: Error) => this.log.warn({ err: err.message }, 'could not release in-flight work; its leases will expire'));
  }

  private async run(): Promise<void> {
    let errorDelay = 100;
    while (!this.stopping) {
      const wanted = this.wanted();
      if (!wanted.size) {
        await this.signal.wait(this.loopOptions.pollInterval);
        continue;
      }
      try {
        const claimed = await this.claim(wanted);
        errorDelay = 100;
        const got = new Map<string, number>();
        for (const c of claimed) got.set(c.group, (got.get(c.group) ?? 0) + 1);
        for (const [group, n] of wanted) {
          if (got.get(group) === n) this.backlogged.add(group);
          else this.backlogged.delete(group);
        }
        for (const item of claimed) this.dispatch(item);
        // Claim again at once only while a backlogged group has free slots; otherwise wait for a kick.
        const wantedNow = this.wanted();
        if (![...this.backlogged].some((group) => wantedNow.has(group))) await this.signal.wait(this.loopOptions.pollInterval);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'claiming work failed; retrying');
        await this.signal.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }

  /**
   * How many items to ask each group for. Every group with room gets a fair share of the free slots first — in a
   * rotating order, so that with more groups than slots each gets its turn — and backlogged groups get the rest.
   * (Handing the slots out in a fixed order would starve every group past the first few.)
   */
  private wanted(): Map<string, number> {
    const wanted = new Map<string, number>();
    let free = this.loopOptions.concurrency - this.inFlight.size;
    const limits = [...this.limits()];
    if (free <= 0 || !limits.length) return wanted;
    const start = this.rotation++ % limits.length;
    const ordered = [...limits.slice(start), ...limits.slice(0, start)];
    const room = (group: string, limit: number) => Math.min(limit - (this.perGroup.get(group) ?? 0), this.loopOptions.maxClaim) - (wanted.get(group) ?? 0);
    const share = Math.max(1, Math.floor(free / ordered.length));
    for (const [group, limit] of ordered) {
      if (free <= 0) break;
      const n = Math.min(room(group, limit), share, free);
      if (n > 0) {
        wanted.set(group, n);
        free -= n;
      }
    }
    for (const [group, limit] of ordered) {
      if (free <= 0) break;
      if (!this.backlogged.has(group)) continue;
      const n = Math.min(room(group, limit), free);
      if (n > 0) {
        wanted.set(group, (wanted.get(group) ?? 0) + n);
        free -= n;
      }
    }
    return wanted;
  }

  private dispatch(item: C): void {
    const controller = new AbortController();
    this.inFlight.set(item.key, { item, controller });
    this.perGroup.set(item.group, (this.perGroup.get(item.group) ?? 0) + 1);
    void this.process(item, controller.signal)
      .catch((err: Error) => this.log.error({ err: err.message, key: item.key }, 'processing failed; the lease will expire and it is retried'))
      .finally(() => {
        this.inFlight.delete(item.key);
        const running = (this.perGroup.get(item.group) ?? 1) - 1;
        this.perGroup.set(item.group, running);
        // Claim again once a quarter of the group's slots are free: one round trip per few items, not per item.
        const limit = this.limits().get(item.group) ?? 0;
        if (this.backlogged.has(item.group) && limit - running >= Math.max(1, limit >> 2)) this.signal.kick();
      });
  }
}

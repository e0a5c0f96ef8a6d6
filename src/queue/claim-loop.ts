import { setMaxListeners } from 'node:events';
import type { Logger } from '../observability/logger.js';
import { freeSlots, type LoopLoad, resultsLag, shareSlots } from '../model/slot-sharing.js';
import type { SleepingFlag } from './sleeping-flag.js';
import { WakeSignal } from './wake-signal.js';

/** A unit of leased work: `group` is what limits apply to (a subscription, a function). */
export interface Claimed {
  key: string;
  group: string;
}

export interface ClaimLoopOptions {
  /** Items processed at once in this process, over all groups. */
  concurrency: number;
  pollInterval: number;
  /** Largest claim per group per round trip. */
  maxClaim: number;
}

/** Items claimed ahead of processing wait in a local queue; over all groups at most this many, and this many bytes. */
const MAX_QUEUED = 2000;
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/**
 * Finished items whose results are not written yet that stop new claims until they are (see freeSlots): a few of
 * the workers' result batches, or as many bytes as the claimed queue may hold.
 */
const MAX_UNRECORDED = 1000;
const MAX_UNRECORDED_BYTES = MAX_QUEUED_BYTES;
/** Longest claim round trip a lease makes room for (see claimAllowanceMs). */
const MAX_CLAIM_ALLOWANCE_MS = 30_000;
/**
 * Under load a loop with a sleeping flag clears it, and nobody announces its work: it claims again this soon, not at
 * once (claims of a few items each, one per round trip) nor at the poll (the work would wait that long).
 */
const LOADED_POLL_MS = 10;
/** Items handed back unstarted because their lease ran short are reported at most this often. */
const STALE_REPORT_MS = 10_000;

interface Queued<C> {
  item: C;
  bytes: number;
  /** When processing must have started for the item's lease to outlast the attempt (epoch ms). */
  startBy: number;
}

/**
 * The loop shared by the delivery and function workers: claim leased work per group within the free slots
 * (per process and per group), process each item concurrently, claim again when slots free up while the backlog
 * lasts, otherwise sleep until kicked or the poll interval passes.
 *
 * A group may also claim ahead (`prefetch`): up to that many items beyond its free slots wait in a local queue,
 * so that the next claim's round trip overlaps the current work instead of leaving the slots idle. Queued items
 * are leased like running ones; one that waited so long its lease could run out mid-attempt is handed back
 * unstarted. In-flight work and memory stay bounded (`concurrency` running, MAX_QUEUED waiting), however large
 * the backlog.
 */
export abstract class ClaimLoop<C extends Claimed> {
  protected readonly signal = new WakeSignal();
  private readonly inFlight = new Map<string, C>();
  /**
   * Aborted at shutdown, once the grace period is over, for every item still in flight: one for all of them (a
   * controller per item cost an AbortController, an AbortSignal and their listeners per delivery; nothing else aborts
   * a single item). Every in-flight item may listen to it.
   */
  private readonly shutdown = new AbortController();
  private readonly perGroup = new Map<string, number>();
  private readonly queues = new Map<string, Queued<C>[]>();
  private queued = 0;
  private queuedBytes = 0;
  /** Groups whose last claim filled every slot asked for: they probably have more waiting. */
  private readonly backlogged = new Set<string>();
  /** Unstarted items whose lease ran short while queued: handed back in one statement. */
  private stale: C[] = [];
  private stopping = false;
  private loop: Promise<void> | null = null;
  private rotation = 0;
  /**
   * How long recent claims took to answer (the slowest, decaying by a fifth per claim): leases are lengthened by as
   * much. A lease runs from the claim's start on the server, and an item may only start while its lease still
   * covers a whole attempt; with a fixed budget, claims slower than the budget (a deep backlog after a PostgreSQL
   * restart, a loaded machine) came back with every item already too late to start, which was handed back
   * unstarted, claimed again as slowly, and so on in every process: deliveries stopped for good.
   */
  protected claimAllowanceMs = 0;
  private staleSince = { count: 0, at: 0 };
  /** The last claim was skipped because too many results were unwritten (resultsWritten kicks the loop). */
  private heldBack = false;
  /**
   * Work may have come while the loop had no room to claim it (a kick came, or nobody announces work to it): the
   * next freed slot claims. Before, such a kick was spent on the full loop, and the work waited for the poll.
   */
  private claimWhenFree = false;
  /**
   * Set by a worker whose work is announced only while it says it sleeps (functions: rowcast.invoke NOTIFYs while
   * a function worker's flag is set). Without one, every new piece of work kicks the loop.
   */
  protected sleepingFlag: SleepingFlag | null = null;

  constructor(
    protected readonly loopOptions: ClaimLoopOptions,
    protected readonly log: Logger,
  ) {
    setMaxListeners(0, this.shutdown.signal);
  }

  /**
   * Most items each group may process at once in this process now (groups that are paused are absent). The loop
   * keeps the answer until limitsChanged() is called: it reads it on every finished item.
   */
  protected abstract limits(): Map<string, number>;
  private cachedLimits: Map<string, number> | null = null;
  /** What limits() depends on changed (subscriptions reloaded, a group paused or stopped). */
  protected limitsChanged(): void {
    this.cachedLimits = null;
  }
  /** limits(), kept: computed afresh per finished item it cost O(groups²) per item at fan-out (pumpAll → pump). */
  private get groupLimits(): Map<string, number> {
    return (this.cachedLimits ??= this.limits());
  }
  /** Claims up to n items per group, leased to this process. */
  protected abstract claim(wanted: Map<string, number>): Promise<C[]>;
  /**
   * Does the work and records its outcome; an aborted signal means shutdown: leave the item for release().
   * startBy: the latest time it may start (startBy()), for a runner that queues it in turn.
   */
  protected abstract process(item: C, signal: AbortSignal, startBy: number): Promise<void>;
  /** Hands items back to the database; `started` false: their attempt never began and is not counted. */
  protected abstract release(items: C[], started: boolean): Promise<void>;
  /** Called once in-flight work has settled during stop(). */
  protected async afterDrain(): Promise<void> {}
  /** Called before each claim (e.g. to take concurrency slots shared with other processes). */
  protected async beforeClaim(): Promise<void> {}
  /** Called with each claim's result per group asked (e.g. to give shared slots back once idle). */
  protected afterClaim(_group: string, _got: number, _local: number): void {}
  /** How many items of a group may run at once now, of its limit (default all; functions: the slots held). */
  protected runLimit(_group: string, limit: number): number {
    return limit;
  }
  /** How many items of a group a statement that creates work may lease to this process (default runLimit). */
  protected adoptLimit(group: string, limit: number): number {
    return this.runLimit(group, limit);
  }
  /** How many items a group may claim beyond its free slots (default none). */
  protected prefetch(_group: string, _limit: number): number {
    return 0;
  }
  /** About how much memory an item holds (its body), for the queue's byte bound. */
  protected sizeOf(_item: C): number {
    return 0;
  }
  /** Finished items whose results are still to be written (the worker's result batcher), and their bytes. */
  protected unrecorded(): number {
    return 0;
  }
  protected unrecordedBytes(): number {
    return 0;
  }
  /** The latest time an item claimed now may start (its lease must outlast the attempt). */
  protected startBy(_item: C, claimedAt: number): number {
    return claimedAt + 3_600_000;
  }

  /** stop() was called: no new work starts. */
  protected get isStopping(): boolean {
    return this.stopping;
  }

  get activeCount(): number {
    return this.inFlight.size + this.queued;
  }

  /** Items of a group running or waiting in this process. */
  protected localCount(group: string): number {
    return (this.perGroup.get(group) ?? 0) + (this.queues.get(group)?.length ?? 0);
  }

  startLoop(): void {
    this.loop = this.run();
  }

  /** New work may be waiting. */
  wake(): void {
    this.signal.kick();
  }

  /** A batch of results was written: a loop held back by unwritten results (see freeSlots) claims again. */
  protected resultsWritten(): void {
    if (this.heldBack && !resultsLag(this.load(0))) {
      this.heldBack = false;
      this.signal.kick();
    }
  }

  /**
   * How many items each group could start at once now (free slots only, no claiming ahead): what a statement that
   * creates work may lease to this process directly (adopt), saving the claim's round trip.
   */
  adoptable(): Map<string, number> {
    const room = new Map<string, number>();
    let free = this.stopping ? 0 : freeSlots(this.load(0));
    for (const [group, limit] of this.groupLimits) {
      if (free <= 0) break;
      const n = Math.min(this.adoptLimit(group, limit) - this.localCount(group), free);
      if (n > 0) {
        room.set(group, n);
        free -= n;
      }
    }
    return room;
  }

  /** Items leased to this process by someone else's statement (see adoptable): they start like claimed ones. */
  adopt(items: C[], claimedAt: number): void {
    for (const item of items) this.enqueue(item, claimedAt);
    // Leased for a group paused since the statement began: back at once.
    this.handBackHeld(new Set(items.map((item) => item.group)));
    this.pumpAll();
    // Some could not start (a function's slot was given back meanwhile): the loop takes slots and starts them.
    if (this.queued) this.signal.kick();
  }

  /**
   * Hands back the queued items of groups that may not run here now (paused, disabled, removed): at once, not when
   * their leases run short (a function paused just after routing leased it an invocation held it for the whole lease,
   * 30 s and more, neither run nor pending). Workers call it after reloading what they run; adopt, on every
   * statement that leases work here, looks only at the groups it just queued for.
   */
  protected handBackHeld(groups: Iterable<string> = this.queues.keys()): void {
    const limits = this.groupLimits;
    let handedBack = 0;
    for (const group of [...groups]) {
      const queue = this.queues.get(group);
      if (!queue || limits.has(group)) continue;
      for (const q of queue) this.stale.push(q.item);
      handedBack += queue.length;
      this.queuedBytes -= queue.reduce((sum, q) => sum + q.bytes, 0);
      this.queues.delete(group);
    }
    this.queued -= handedBack;
    if (handedBack) this.signal.kick();
  }

  /** Stops claiming, lets in-flight work finish for up to graceMs, then aborts the rest and releases it. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.signal.kick();
    await this.loop;
    const unstarted = [...this.queues.values()].flat().map((q) => q.item);
    this.queues.clear();
    this.queued = 0;
    this.queuedBytes = 0;
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const leftover = [...this.inFlight.values()];
    this.shutdown.abort();
    while (this.inFlight.size) await new Promise((r) => setTimeout(r, 5));
    await this.afterDrain();
    const handBack = async (items: C[], started: boolean) => {
      if (items.length)
        await this.release(items, started).catch((err: Error) =>
          this.log.warn({ err: err.message }, 'could not release in-flight work; its leases will expire'),
        );
    };
    await handBack(leftover, true);
    await handBack([...unstarted, ...this.stale], false);
    this.stale = [];
  }

  private async run(): Promise<void> {
    let errorDelay = 100;
    /** Kicked since the last claim: work may have been announced that the loop has not claimed yet. */
    let kicked = false;
    while (!this.stopping) {
      try {
        if (this.stale.length) {
          const stale = this.stale;
          this.stale = [];
          await this.release(stale, false).catch((err: Error) =>
            this.log.warn({ err: err.message }, 'could not hand back queued work; its leases will expire'),
          );
        }
        await this.beforeClaim();
        const wanted = this.wanted();
        if (!wanted.size) {
          if (kicked || !(this.sleepingFlag?.announced ?? true)) this.claimWhenFree = true;
          if (await this.signal.wait(this.loopOptions.pollInterval)) kicked = true;
          continue;
        }
        this.claimWhenFree = false;
        kicked = false;
        const claimedAt = Date.now();
        const claimed = await this.claim(wanted);
        const tookMs = Date.now() - claimedAt;
        this.claimAllowanceMs = Math.min(
          MAX_CLAIM_ALLOWANCE_MS,
          Math.max(tookMs, Math.floor(this.claimAllowanceMs * 0.8)),
        );
        errorDelay = 100;
        const got = new Map<string, number>();
        for (const c of claimed) got.set(c.group, (got.get(c.group) ?? 0) + 1);
        for (const [group, n] of wanted) {
          if (got.get(group) === n) this.backlogged.add(group);
          else this.backlogged.delete(group);
        }
        for (const item of claimed) this.enqueue(item, claimedAt);
        for (const group of wanted.keys()) this.afterClaim(group, got.get(group) ?? 0, this.localCount(group));
        this.pumpAll();
        this.reportStale(tookMs);
        const next = this.sleepingFlag
          ? await this.sleepingFlag.afterPass({
              events: claimed.length,
              batchSize: [...wanted.values()].reduce((sum, n) => sum + n, 0),
              busy: false,
              notifyWaiting: this.signal.kicked,
            })
          : 'sleep';
        // Claim again at once only while a backlogged group has a quarter of its room free; otherwise wait for a
        // kick (a finished item, NOTIFY, the poll interval).
        if ([...this.backlogged].some((group) => this.wantsClaim(group))) continue;
        if (next === 'sleep') {
          kicked = await this.signal.wait(this.loopOptions.pollInterval);
          if (this.sleepingFlag) this.sleepingFlag.kicked = kicked;
        } else if (next === 'load') kicked = await this.signal.wait(LOADED_POLL_MS);
        else if (next > 0) kicked = await this.signal.wait(next);
      } catch (err) {
        this.sleepingFlag?.forget();
        this.log.error({ err: (err as Error).message }, 'claiming work failed; retrying');
        await this.signal.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }

  /** Says (at most every STALE_REPORT_MS) that claimed items were handed back unstarted, and how long the claim took. */
  private reportStale(claimMs: number): void {
    if (!this.staleSince.count || Date.now() - this.staleSince.at < STALE_REPORT_MS) return;
    this.log.warn(
      { handedBack: this.staleSince.count, lastClaimMs: claimMs, claimAllowanceMs: this.claimAllowanceMs },
      'claimed work was handed back unstarted: its lease would not have covered an attempt by the time a slot was free (slow claims lengthen the next leases)',
    );
    this.staleSince = { count: 0, at: Date.now() };
  }

  /** Room of a group for more claimed items: its free slots plus its prefetch, less what it already holds. */
  private room(group: string, limit: number): number {
    return Math.min(limit + this.prefetch(group, limit) - this.localCount(group), this.loopOptions.maxClaim);
  }

  /**
   * A backlogged group claims again once a quarter of its room is free: one round trip per many items, not per
   * few. Claiming whatever freed up during the last round trip made batches of a few dozen at any backlog, and a
   * cursor pays one lease and one completion per batch, whatever its size.
   */
  private wantsClaim(group: string, limit = this.groupLimits.get(group) ?? 0): boolean {
    return (
      this.backlogged.has(group) &&
      this.room(group, limit) >=
        Math.max(1, Math.min(this.loopOptions.maxClaim, (limit + this.prefetch(group, limit)) >> 2))
    );
  }

  /** How many items to ask each group for: a fair, rotating share of the free capacity (model/slot-sharing.ts). */
  private wanted(): Map<string, number> {
    const limits = [...this.groupLimits];
    const load = this.load(limits.reduce((sum, [group, limit]) => sum + this.prefetch(group, limit), 0));
    const free = freeSlots(load);
    this.heldBack = free <= 0 && resultsLag(load);
    if (free <= 0 || !limits.length) return new Map();
    // A backlogged group with less than a quarter of its room free sits this claim out (see wantsClaim).
    const groups = limits
      .filter(([group, limit]) => !this.backlogged.has(group) || this.wantsClaim(group, limit))
      .map(([group, limit]) => ({ group, room: this.room(group, limit), backlogged: this.backlogged.has(group) }));
    return shareSlots(groups, free, this.rotation++);
  }

  /** What the loop holds now, for freeSlots; `prefetch` is what its groups may claim ahead (none for adopt). */
  private load(prefetch: number): LoopLoad {
    return {
      concurrency: this.loopOptions.concurrency,
      inFlight: this.inFlight.size,
      queued: this.queued,
      queuedBytes: this.queuedBytes,
      prefetch,
      maxQueued: MAX_QUEUED,
      maxQueuedBytes: MAX_QUEUED_BYTES,
      unrecorded: this.unrecorded(),
      maxUnrecorded: MAX_UNRECORDED,
      unrecordedBytes: this.unrecordedBytes(),
      maxUnrecordedBytes: MAX_UNRECORDED_BYTES,
    };
  }

  private enqueue(item: C, claimedAt: number): void {
    let queue = this.queues.get(item.group);
    if (!queue) this.queues.set(item.group, (queue = []));
    const bytes = this.sizeOf(item);
    queue.push({ item, bytes, startBy: this.startBy(item, claimedAt) });
    this.queued++;
    this.queuedBytes += bytes;
  }

  protected pumpAll(): void {
    // From a rotating start, so that when process slots are scarce no group always goes first.
    const groups = [...this.queues.keys()];
    const start = groups.length ? this.rotation % groups.length : 0;
    for (const group of [...groups.slice(start), ...groups.slice(0, start)]) this.pump(group);
  }

  /** Starts queued items of a group while it and the process have free slots. */
  private pump(group: string): void {
    const queue = this.queues.get(group);
    if (!queue?.length || this.stopping) return;
    const limit = this.runLimit(group, this.groupLimits.get(group) ?? 0);
    while (
      queue.length &&
      this.inFlight.size < this.loopOptions.concurrency &&
      (this.perGroup.get(group) ?? 0) < limit
    ) {
      const next = queue.shift()!;
      this.queued--;
      this.queuedBytes -= next.bytes;
      if (Date.now() > next.startBy) {
        this.stale.push(next.item);
        this.staleSince.count++;
      } else this.dispatch(next.item, next.startBy);
    }
    if (!queue.length) this.queues.delete(group);
    if (this.stale.length) this.signal.kick();
  }

  private dispatch(item: C, startBy: number): void {
    this.inFlight.set(item.key, item);
    this.perGroup.set(item.group, (this.perGroup.get(item.group) ?? 0) + 1);
    void this.process(item, this.shutdown.signal, startBy)
      .catch((err: Error) =>
        this.log.error(
          { err: err.message, key: item.key },
          'processing failed; the lease will expire and it is retried',
        ),
      )
      .finally(() => {
        this.inFlight.delete(item.key);
        const running = (this.perGroup.get(item.group) ?? 1) - 1;
        this.perGroup.set(item.group, running);
        const wasFull = this.inFlight.size + 1 >= this.loopOptions.concurrency;
        this.pump(item.group);
        // A process-wide slot freed up: other groups' queues may start now.
        if (wasFull) this.pumpAll();
        // (A backlogged group waits for a quarter of its room, as wantsClaim says, whatever was announced.)
        if ((this.claimWhenFree && !this.backlogged.has(item.group)) || this.wantsClaim(item.group)) this.signal.kick();
      });
  }
}

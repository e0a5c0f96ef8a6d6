import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import { claimDeliveries, completeDeliveries, type ClaimedDelivery, type DeliveryResult, loadSubscriptions, releaseDeliveries, setSubscriptionState } from '../subscriptions/delivery-store.js';
import { decideAfterFailure } from '../subscriptions/retry-policy.js';
import { FunctionSink } from '../subscriptions/sinks/function/function-sink.js';
import { HttpSink } from '../subscriptions/sinks/http/http-sink.js';
import type { SendOutcome, Sink, Subscription } from '../subscriptions/sinks/sink.js';
import { WakeSignal } from './wake-signal.js';

export interface DeliveryWorkerOptions {
  owner: string;
  /** Concurrent deliveries of this process, over all subscriptions. */
  concurrency: number;
  lease: number;
  pollInterval: number;
}

/** Largest claim per subscription per round trip. */
const MAX_CLAIM = 200;
/** Results are written in batches: after this many, or this long after the first. */
const FLUSH_SIZE = 200;
const FLUSH_DELAY_MS = 5;

interface InFlight {
  claim: ClaimedDelivery;
  controller: AbortController;
}

/**
 * Claims due deliveries with a lease, sends them through the subscription's sink with bounded concurrency (per
 * process and per subscription), and records the outcomes in batches. In-flight work and memory are bounded by
 * `concurrency`, however large the backlog.
 */
export class DeliveryWorker {
  private readonly signal = new WakeSignal();
  private readonly sinks = new Map<string, Sink>();
  private subscriptions = new Map<string, Subscription>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly perSubscription = new Map<string, number>();
  private results: DeliveryResult[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private retryTimer: { at: number; timer: NodeJS.Timeout } | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  /** Subscriptions whose last claim filled every slot asked for: they probably have more waiting. */
  private readonly backlogged = new Set<string>();

  constructor(
    private readonly pool: Pool,
    private readonly options: DeliveryWorkerOptions,
    private readonly log: Logger,
  ) {
    const http = new HttpSink();
    this.sinks.set('http', http);
    this.sinks.set('https', http);
    this.sinks.set('function', new FunctionSink(pool, () => this.onInvocationQueued()));
  }

  /** Set by the runtime: a function subscription queued an invocation. */
  onInvocationQueued: () => void = () => {};

  async start(): Promise<void> {
    await this.reloadSubscriptions();
    this.loop = this.run();
  }

  /** New deliveries may be waiting. */
  wake(): void {
    this.signal.kick();
  }

  async reloadSubscriptions(): Promise<void> {
    this.subscriptions = new Map((await loadSubscriptions(this.pool)).map((s) => [s.name, s]));
    this.signal.kick();
  }

  get activeCount(): number {
    return this.inFlight.size;
  }

  /**
   * Stops claiming, lets in-flight deliveries finish for up to graceMs, then aborts the rest and hands them back
   * to the database (due at once, for this or another process).
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.signal.kick();
    await this.loop;
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const leftover = [...this.inFlight.values()];
    for (const f of leftover) f.controller.abort();
    while (this.inFlight.size) await new Promise((r) => setTimeout(r, 5));
    await this.flush();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await releaseDeliveries(this.pool, leftover.map((f) => ({ deliveryId: f.claim.deliveryId, attempt: f.claim.attempt }))).catch((err: Error) =>
      this.log.warn({ err: err.message }, 'could not release in-flight deliveries; their leases will expire'),
    );
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    for (const sink of new Set(this.sinks.values())) await sink.close();
  }

  private async run(): Promise<void> {
    let errorDelay = 100;
    while (!this.stopping) {
      const wanted = this.wanted();
      if (!wanted.size) {
        await this.signal.wait(this.options.pollInterval);
        continue;
      }
      try {
        const claimed = await claimDeliveries(this.pool, wanted, this.options.lease, this.options.owner);
        errorDelay = 100;
        // A subscription that filled every slot it asked for probably has more waiting.
        const got = new Map<string, number>();
        for (const c of claimed) got.set(c.subscription, (got.get(c.subscription) ?? 0) + 1);
        for (const [name, n] of wanted) {
          if (got.get(name) === n) this.backlogged.add(name);
          else this.backlogged.delete(name);
        }
        for (const claim of claimed) this.dispatch(claim);
        // Claim again at once only while the backlog fills every free slot; otherwise wait for a kick.
        const wantedNow = this.wanted();
        if (![...this.backlogged].some((name) => wantedNow.has(name))) await this.signal.wait(this.options.pollInterval);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'claiming deliveries failed; retrying');
        await this.signal.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }

  /** Free slots per active subscription, within the process-wide limit. */
  private wanted(): Map<string, number> {
    const wanted = new Map<string, number>();
    let free = this.options.concurrency - this.inFlight.size;
    for (const sub of this.subscriptions.values()) {
      if (free <= 0) break;
      if (sub.state !== 'active' || !this.sinks.has(sub.protocol)) continue;
      const n = Math.min(sub.settings.maxConcurrency - (this.perSubscription.get(sub.name) ?? 0), free, MAX_CLAIM);
      if (n > 0) {
        wanted.set(sub.name, n);
        free -= n;
      }
    }
    return wanted;
  }

  private dispatch(claim: ClaimedDelivery): void {
    const subscription = this.subscriptions.get(claim.subscription);
    const controller = new AbortController();
    this.inFlight.set(claim.deliveryId, { claim, controller });
    this.perSubscription.set(claim.subscription, (this.perSubscription.get(claim.subscription) ?? 0) + 1);
    const sink = subscription && this.sinks.get(subscription.protocol);
    const sending: Promise<SendOutcome> =
      subscription && sink
        ? sink.send({ deliveryId: claim.deliveryId, attempt: claim.attempt, subscription, message: claim.message }, controller.signal)
        : Promise.resolve({ kind: 'retry', error: `subscription ${claim.subscription} is not loaded in this process` });
    void sending
      .catch((err: Error): SendOutcome => ({ kind: 'retry', error: `sink failed: ${err.message}` }))
      .then((outcome) => {
        this.inFlight.delete(claim.deliveryId);
        this.perSubscription.set(claim.subscription, (this.perSubscription.get(claim.subscription) ?? 1) - 1);
        // Aborted by shutdown: stop() hands it back instead of counting a failure.
        if (!controller.signal.aborted) this.record(claim, subscription, outcome);
        // Claim again once a quarter of the subscription's slots are free: one round trip per few deliveries, not per delivery.
        if (this.backlogged.has(claim.subscription) && subscription) {
          const free = subscription.settings.maxConcurrency - (this.perSubscription.get(claim.subscription) ?? 0);
          if (free >= Math.max(1, subscription.settings.maxConcurrency >> 2)) this.signal.kick();
        }
      });
  }

  private record(claim: ClaimedDelivery, subscription: Subscription | undefined, outcome: SendOutcome): void {
    const base = { deliveryId: claim.deliveryId, attempt: claim.attempt, status: 'status' in outcome ? outcome.status : undefined };
    if (outcome.kind === 'done') {
      this.push({ ...base, state: 'done' });
      return;
    }
    this.log.warn({ subscription: claim.subscription, delivery: claim.deliveryId, message: claim.message.id, attempt: claim.attempt, error: outcome.error }, 'delivery attempt failed');
    if (outcome.kind === 'disable') {
      // The endpoint said it is gone: stop sending to it, keep its deliveries pending for when it is resumed.
      // Stop here at once: the delivery below is due again now, and the reload may come after it is written.
      const current = this.subscriptions.get(claim.subscription);
      if (current) this.subscriptions.set(claim.subscription, { ...current, state: 'disabled' });
      void setSubscriptionState(this.pool, claim.subscription, 'disabled', outcome.error)
        .then(() => this.reloadSubscriptions())
        .catch((err: Error) => this.log.error({ err: err.message }, 'could not disable subscription'));
      this.push({ ...base, state: 'pending', availableAt: new Date(), error: outcome.error });
      return;
    }
    if (outcome.kind === 'dead' || !subscription) {
      this.push({ ...base, state: 'dead', error: outcome.error });
      return;
    }
    const decision = decideAfterFailure(claim.attempt, subscription.settings.deliveryPolicy, outcome.retryAfterMs);
    if (decision.state === 'dead') {
      this.push({ ...base, state: 'dead', error: `${outcome.error} (after ${claim.attempt} attempts)` });
      return;
    }
    const at = Date.now() + decision.delayMs;
    this.push({ ...base, state: 'pending', availableAt: new Date(at), error: outcome.error });
    this.wakeAt(at);
  }

  /** Retries scheduled by this process are claimed on time, not a poll interval late. */
  private wakeAt(at: number): void {
    if (this.retryTimer && this.retryTimer.at <= at) return;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    const timer = setTimeout(() => {
      this.retryTimer = null;
      this.signal.kick();
    }, Math.max(0, at - Date.now()) + 5);
    this.retryTimer = { at, timer };
  }

  private push(result: DeliveryResult): void {
    this.results.push(result);
    if (this.results.length >= FLUSH_SIZE) void this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), FLUSH_DELAY_MS);
  }

  private flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    this.flushing = this.flushing.then(async () => {
      const batch = this.results;
      if (!batch.length) return;
      this.results = [];
      try {
        await completeDeliveries(this.pool, batch);
      } catch (err) {
        // Keep them and try again: until written, their leases keep others from sending them twice.
        this.log.error({ err: (err as Error).message, results: batch.length }, 'recording delivery results failed; retrying');
        this.results.unshift(...batch);
        if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 500);
      }
    });
    return this.flushing;
  }
}

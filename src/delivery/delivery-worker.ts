import type { Logger } from '../observability/logger.js';
import { observe } from '../observability/observe.js';
import { validTraceparent } from '../model/trace-context.js';
import { startDeliverySpan, tracing } from '../observability/tracing.js';
import type { Pool } from '../store/pool.js';
import {
  completeDeliveries,
  type ClaimedDelivery,
  type DeliveryResult,
  loadSubscriptions,
  releaseDeliveries,
  setSubscriptionState,
} from './delivery-store.js';
import { deadResult } from './dead-letter.js';
import { decideBodySize, decideOutcome } from '../model/delivery-outcome.js';
import { EndpointHealthTracker } from './endpoint-health.js';
import type { SnsEnvelopes } from './sns-envelope/sns-envelopes.js';
import { BUILT_IN_SINKS, createSinks, type SinkFactory } from './sinks/sink-registry.js';
import type { OutboundMessage, SendOutcome, Sink, Subscription } from '../model/sink.js';
import type { ClaimChecks } from '../routing/claim-check.js';
import type { DirectClaim } from '../routing/fan-out.js';
import { ClaimLoop } from '../queue/claim-loop.js';
import { ResultBatcher } from '../queue/result-batcher.js';
import { ClaimSession } from '../queue/claim-session.js';
import { CursorReader } from './cursor-reader.js';
import type { LeasedMessage, LogRange } from '../store/log-leases.js';
import type { SqlRow } from '../store/sql.js';

export interface DeliveryWorkerOptions {
  owner: string;
  /** Concurrent deliveries of this process, over all subscriptions. */
  concurrency: number;
  lease: number;
  pollInterval: number;
  /** Webhooks may go to loopback, private and other internal addresses (runtime.allowPrivateEndpoints). */
  allowPrivateEndpoints?: boolean;
  /** The sinks by protocol; default BUILT_IN_SINKS (delivery/sinks/sink-registry.ts). */
  sinks?: readonly SinkFactory[];
}

/** Time beyond an attempt's timeout for recording its result before its lease may be taken over. */
const LEASE_MARGIN_MS = 5000;

/** Claimed ahead, a delivery may wait this long for a free slot (its lease is longer by as much). */
const QUEUE_BUDGET_MS = 2000;

/** A claimed delivery row, or a message leased in a range of a subscription's cursor (`range`). */
type Claimed = ClaimedDelivery & { key: string; group: string; leaseMs: number; range?: LogRange };

/**
 * Delivers messages: claims due deliveries with a lease, sends them through the subscription's sink with bounded
 * concurrency (per process and per subscription), and records the outcomes in batches.
 */
export class DeliveryWorker extends ClaimLoop<Claimed> {
  private readonly sinks: Map<string, Sink>;
  private subscriptions = new Map<string, Subscription>();
  /** Subscriptions left out because their stored settings do not validate, with the error reported. */
  private invalidSettings = new Map<string, string>();
  /** Results are written in batches: of 200 at most, 5 ms after the first. */
  private readonly results: ResultBatcher<DeliveryResult>;
  private retryTimer: { at: number; timer: NodeJS.Timeout } | null = null;
  /** Moving average of each subscription's attempt duration (ms), which sizes how far ahead it is claimed. */
  private readonly sendMs = new Map<string, number>();
  private readonly session: ClaimSession;
  /** Failing endpoints and their disableAfter policy (endpoint-health.ts). */
  private readonly health: EndpointHealthTracker;
  /** Subscriptions that read their topic through a cursor (cursor-reader.ts). */
  private readonly cursors: CursorReader;

  /** Set by the runtime: a function subscription queued an invocation. */
  onInvocationQueued: () => void = () => {};
  /** Set by the runtime: signs links to stored bodies of messages over their topic's size limit. */
  claimChecks: ClaimChecks | null = null;
  /** Set by the runtime: renders SNS envelopes (format 'sns') for the http and email sinks. */
  snsEnvelopes: SnsEnvelopes | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly options: DeliveryWorkerOptions,
    log: Logger,
  ) {
    // Claims of up to 500 per subscription: a cursor pays its lease and completion per claim, whatever its size.
    super({ concurrency: options.concurrency, pollInterval: options.pollInterval, maxClaim: 500 }, log);
    this.session = new ClaimSession(pool, log);
    this.health = new EndpointHealthTracker(pool, log, (name) => this.stopClaiming(name));
    this.cursors = new CursorReader(
      pool,
      log,
      () => this.wake(),
      (message, { claimedAt, leaseMs }) => {
        if (this.isStopping) return false;
        this.adopt([this.fromLog(message, leaseMs)], claimedAt);
        return true;
      },
    );
    this.results = new ResultBatcher({
      write: async (batch) => {
        await completeDeliveries(pool, batch);
        // Dead letters are new deliveries of their own.
        if (batch.some((r) => r.deadLetter)) this.wake();
      },
      written: () => this.resultsWritten(),
      log,
      what: 'delivery',
      size: 200,
      delayMs: 5,
    });
    this.sinks = createSinks(options.sinks ?? BUILT_IN_SINKS, {
      pool,
      allowPrivateEndpoints: options.allowPrivateEndpoints ?? false,
      onInvocationQueued: () => this.onInvocationQueued(),
      snsEnvelopes: () => this.snsEnvelopes,
    });
  }

  /** Some subscription reads its topic through a cursor: new messages, not only new rows, are work (set at reload). */
  readsLog = false;

  async start(): Promise<void> {
    await this.reloadSubscriptions();
    this.startLoop();
  }

  async reloadSubscriptions(): Promise<void> {
    // A rotated SNS signing key is announced like a config change.
    this.snsEnvelopes?.reload();
    const invalid = new Map<string, string>();
    this.subscriptions = new Map(
      (await loadSubscriptions(this.pool, (name, error) => invalid.set(name, error))).map((s) => [s.name, s]),
    );
    this.readsLog = [...this.subscriptions.values()].some((sub) => sub.readsLog);
    this.limitsChanged();
    // Each invalid row is reported once (again if it changes), not on every reload.
    for (const [name, error] of invalid)
      if (this.invalidSettings.get(name) !== error) this.log.error({ subscription: name }, error);
    this.invalidSettings = invalid;
    this.handBackHeld();
    this.wake();
  }

  protected limits(): Map<string, number> {
    const limits = new Map<string, number>();
    for (const sub of this.subscriptions.values()) {
      if (sub.state === 'active' && this.sinks.has(sub.protocol)) limits.set(sub.name, sub.settings.maxConcurrency);
    }
    return limits;
  }

  /** Due delivery rows first (retries, redrives, work from before a switch to a cursor), then cursors' ranges. */
  protected async claim(wanted: Map<string, number>): Promise<Claimed[]> {
    const leaseMs = this.leaseFor(wanted.keys());
    const { owner } = this.options;
    const claimedAt = Date.now();
    return this.session.run(async (client) => {
      const { rows, messages } = await this.cursors.claim(
        client,
        wanted,
        { leaseMs, owner, claimedAt },
        this.subscriptions,
      );
      return [
        ...rows.map((c) => ({ ...c, key: c.deliveryId, group: c.subscription, leaseMs })),
        ...messages.map((m) => this.fromLog(m, leaseMs)),
      ];
    });
  }

  private fromLog({ range, delivery }: LeasedMessage, leaseMs: number): Claimed {
    return { ...delivery, key: delivery.deliveryId, group: delivery.subscription, leaseMs, range };
  }

  /**
   * A lease outlives the attempt's timeout, so a slow attempt is never taken over while it may still succeed.
   * Claimed ahead, it may also wait up to QUEUE_BUDGET_MS for a slot first, after a claim that may take as long as
   * recent ones did (claimAllowanceMs).
   */
  private leaseFor(subscriptions: Iterable<string>): number {
    const longest = Math.max(
      0,
      ...[...subscriptions].map((name) => this.subscriptions.get(name)?.settings.deliveryPolicy.timeout ?? 0),
    );
    return Math.max(this.options.lease, longest + LEASE_MARGIN_MS + QUEUE_BUDGET_MS + this.claimAllowanceMs);
  }

  /** What routing and publishing may lease to this process as they create deliveries (see adoptable). */
  directClaim(): DirectClaim | undefined {
    const wanted = this.adoptable();
    if (!wanted.size) return undefined;
    const leaseMs = this.leaseFor(wanted.keys());
    const claim = { wanted, leaseMs, owner: this.options.owner, claimedAt: Date.now() };
    return this.readsLog ? { ...claim, horizon: this.cursors.settledHorizon } : claim;
  }

  /** Deliveries (and messages of cursors' ranges) leased to this process by the statement that created them. */
  adoptClaimed(claimed: ClaimedDelivery[], { leaseMs, claimedAt }: DirectClaim, leased: SqlRow[] = []): void {
    const messages = leased.length
      ? this.cursors.adoptLease(leased, { leaseMs, claimedAt }, this.subscriptions).map((m) => this.fromLog(m, leaseMs))
      : [];
    if (claimed.length || messages.length)
      this.adopt(
        [...claimed.map((c) => ({ ...c, key: c.deliveryId, group: c.subscription, leaseMs })), ...messages],
        claimedAt,
      );
  }

  /**
   * Claim ahead of free slots as many as the slots get through in about a second at the subscription's recent
   * pace (none until its pace is known): the next claim's round trip then overlaps the sends.
   */
  protected override prefetch(group: string, limit: number): number {
    const ms = this.sendMs.get(group);
    return ms === undefined ? 0 : Math.min(this.loopOptions.maxClaim, Math.floor((limit * 1000) / Math.max(ms, 0.5)));
  }

  protected override unrecorded(): number {
    return this.results.backlog;
  }

  protected override sizeOf(item: Claimed): number {
    return item.message.body.length;
  }

  /** A queued delivery starts only while its lease still covers a whole attempt and the recording of its result. */
  protected override startBy(item: Claimed, claimedAt: number): number {
    const timeout = this.subscriptions.get(item.subscription)?.settings.deliveryPolicy.timeout ?? 0;
    return claimedAt + item.leaseMs - timeout - LEASE_MARGIN_MS;
  }

  protected async process(claim: Claimed, signal: AbortSignal): Promise<void> {
    const subscription = this.subscriptions.get(claim.subscription);
    const sink = subscription && this.sinks.get(subscription.protocol);
    // Only a valid W3C traceparent is passed on to subscribers.
    claim.message.trace = validTraceparent(claim.message.trace);
    // With tracing, the attempt's span is a child of the message's trace, and subscribers receive the span's own context.
    const span = tracing.enabled
      ? startDeliverySpan({
          deliveryId: claim.deliveryId,
          messageId: claim.message.id,
          topic: claim.message.topic,
          subscription: claim.subscription,
          protocol: subscription?.protocol ?? 'unknown',
          endpoint: subscription?.endpoint ?? '',
          options: subscription?.settings.options,
          attempt: claim.attempt,
          parent: claim.message.trace,
        })
      : null;
    if (span) claim.message.trace = span.traceparent;
    if (!subscription || !sink) {
      // Nothing was sent: hand it back without counting an attempt, for a process that has the subscription (this
      // one too, once its reload has it; until then it does not claim it).
      const decision = decideOutcome({ kind: 'unloaded' }, claim.attempt, undefined, {
        name: claim.subscription,
        deadLetterTopic: null,
      });
      const error = 'error' in decision ? decision.error : `subscription ${claim.subscription} is not loaded`;
      this.log.warn(
        { subscription: claim.subscription, delivery: claim.deliveryId },
        `${error}; handed back for a retry`,
      );
      span?.end({ error, outcome: 'released' });
      await this.release([claim], false);
      void this.reloadSubscriptions().catch((err: Error) =>
        this.log.warn({ err: err.message }, 'could not reload subscriptions'),
      );
      return;
    }
    const started = performance.now();
    const message = this.sizedForTopic(claim);
    const outcome: SendOutcome =
      typeof message === 'string'
        ? { kind: 'dead', error: message }
        : await sink
            .send(
              // A cursor's success writes no row, so its exchange would not be kept.
              { deliveryId: claim.deliveryId, attempt: claim.attempt, subscription, message, logSuccess: !claim.range },
              signal,
            )
            .catch((err: Error): SendOutcome => ({ kind: 'retry', error: `sink failed: ${err.message}` }));
    // Aborted by shutdown: stop() releases it instead of counting a failure.
    if (signal.aborted) return span?.end({ error: 'aborted: rowcast is shutting down', outcome: 'released' });
    const durationMs = performance.now() - started;
    this.sendMs.set(claim.subscription, 0.8 * (this.sendMs.get(claim.subscription) ?? durationMs) + 0.2 * durationMs);
    const result = this.record(claim, subscription, outcome, durationMs);
    this.health.note({ subscription: claim.subscription, state: result.state });
    span?.end({
      error: result.error,
      status: result.status,
      outcome: result.state === 'done' ? 'delivered' : result.state === 'dead' ? 'dead' : 'failed',
    });
    observe.emit('delivery:attempted', {
      deliveryId: claim.deliveryId,
      messageId: claim.message.id,
      subscription: claim.subscription,
      protocol: subscription.protocol,
      attempt: claim.attempt,
      outcome: result.state === 'done' ? 'delivered' : result.state === 'dead' ? 'dead' : 'failed',
      status: result.status ?? null,
      durationMs,
      latencyMs: result.state === 'done' ? Date.now() - Date.parse(claim.message.timestamp) : null,
    });
  }

  /** The message to send under the topic's size rules: itself, a claim-check reference, or why it cannot go. */
  private sizedForTopic({ message, limits }: ClaimedDelivery): OutboundMessage | string {
    const decision = decideBodySize(message.body, limits, message.topic);
    if (decision.send === 'message') return message;
    if (decision.send === 'none') return decision.error;
    try {
      return this.claimChecks!.reference(message, limits.claimCheckTtl);
    } catch (err) {
      return `message of ${Buffer.byteLength(message.body)} bytes needs a claim check, but ${(err as Error).message}`;
    }
  }

  protected async release(items: Claimed[], started: boolean): Promise<void> {
    await releaseDeliveries(
      this.pool,
      items.filter((c) => !c.range).map((c) => ({ deliveryId: c.deliveryId, attempt: c.attempt, lease: c.lease })),
      started,
    );
    await this.cursors.handBack(items, started);
  }

  protected override async afterDrain(): Promise<void> {
    await this.results.drain();
    await this.cursors.drain();
    await this.health.flush();
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    for (const sink of new Set(this.sinks.values())) await sink.close();
    await this.session.close();
  }

  /** Queues the attempt's result for the next batch write, and returns it. */
  private record(claim: Claimed, subscription: Subscription, outcome: SendOutcome, durationMs: number): DeliveryResult {
    const base = {
      deliveryId: claim.deliveryId,
      attempt: claim.attempt,
      lease: claim.lease,
      status: 'status' in outcome ? outcome.status : undefined,
      durationMs,
      exchange: outcome.exchange,
    };
    const decision = decideOutcome(outcome, claim.attempt, subscription.settings.deliveryPolicy, subscription);
    if (decision.action === 'done') return this.push(claim, { ...base, state: 'done' });
    if (decision.action === 'dead')
      return this.push(claim, deadResult(this.log, claim, subscription, base, decision.error));
    this.log.warn(
      {
        subscription: claim.subscription,
        delivery: claim.deliveryId,
        message: claim.message.id,
        attempt: claim.attempt,
        error: decision.error,
      },
      'delivery attempt failed',
    );
    if (decision.action === 'disable') {
      // The endpoint said it is gone: stop sending to it, keep its deliveries pending for when it is resumed.
      // Stop here at once: the delivery below is due again now, and the reload may come after it is written.
      this.stopClaiming(claim.subscription);
      void setSubscriptionState(this.pool, claim.subscription, 'disabled', decision.error)
        .then((changed) => {
          if (changed)
            observe.emit('subscription:disabled', {
              subscription: claim.subscription,
              cause: 'endpoint_gone',
              reason: decision.error,
            });
          return this.reloadSubscriptions();
        })
        .catch((err: Error) => this.log.error({ err: err.message }, 'could not disable subscription'));
      return this.push(claim, { ...base, state: 'pending', availableAt: new Date(), error: decision.error });
    }
    // A retry ('release' cannot come from a sent attempt of a loaded subscription).
    const at = Date.now() + (decision.action === 'retry' ? decision.delayMs : 0);
    this.wakeAt(at);
    return this.push(claim, { ...base, state: 'pending', availableAt: new Date(at), error: decision.error });
  }

  /** A subscription disabled here stops being claimed at once, before the reload that NOTIFY brings. */
  private stopClaiming(name: string): void {
    const current = this.subscriptions.get(name);
    if (!current) return;
    this.subscriptions.set(name, { ...current, state: 'disabled' });
    this.limitsChanged();
  }

  /** Retries scheduled by this process are claimed on time, not a poll interval late. */
  private wakeAt(at: number): void {
    if (this.retryTimer && this.retryTimer.at <= at) return;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    const timer = setTimeout(
      () => {
        this.retryTimer = null;
        this.wake();
      },
      Math.max(0, at - Date.now()) + 5,
    );
    this.retryTimer = { at, timer };
  }

  /** A row's result goes to the next batch; a cursor's message counts towards its range's completion. */
  private push(claim: Claimed, result: DeliveryResult): DeliveryResult {
    if (!claim.range) this.results.add(result);
    else
      this.cursors.settle(
        claim.range,
        claim.message.id,
        result.state === 'done' ? { kind: 'done' } : { kind: 'failed', result },
      );
    return result;
  }
}

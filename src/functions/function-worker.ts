import { failureRecordId } from '../model/published-ids.js';
import { type AwsConfig, awsSchema } from '../config/aws-schema.js';
import { type FunctionConfig } from '../config/function-schema.js';
import { ClaimLoop } from '../queue/claim-loop.js';
import { ClaimSession } from '../queue/claim-session.js';
import { SleepingFlag } from '../queue/sleeping-flag.js';
import type { Logger } from '../observability/logger.js';
import { observe } from '../observability/observe.js';
import { validTraceparent } from '../model/trace-context.js';
import { startInvocationSpan, tracing } from '../observability/tracing.js';
import type { Pool } from '../store/pool.js';
import { decideInvocationFailure, tooOldToRun } from '../model/invocation-outcome.js';
import { givesSlotsBack } from '../model/slot-sharing.js';
import type { DirectClaimant } from '../routing/fan-out.js';
import type { DirectInvocationClaim } from '../routing/route-events.js';
import { type FailureCondition, failureRecord } from './failure-record.js';
import { pausedFunctions } from './function-state.js';
import type { InvocationRunner } from './invocation-runner.js';
import { invocationRunnerFor } from './invocation-runner-for.js';
import { InvocationRecorder } from './invocation-recorder.js';
import { InvocationSnsEndpoint } from './invocation-sns-endpoint.js';
import {
  type ClaimedInvocation,
  claimInvocations,
  listTopics,
  releaseInvocations,
  releaseSlots,
} from './invocation-store.js';
import type { HandlerError, TopicRules } from '../model/thread-protocol.js';

export interface FunctionWorkerOptions {
  owner: string;
  concurrency: number;
  lease: number;
  pollInterval: number;
  /** Region and account of the functions' ARNs and of AWS_REGION in handlers; the SNS API's settings for their SDK. */
  aws?: AwsConfig;
}

/** A claimed-ahead invocation starts only while its lease still has this much beyond the timeout. */
const START_MARGIN_MS = 10_000;
/**
 * Slots go back after this long without work. Not at once: a NOTIFY wakes the worker before the router has
 * turned the event into an invocation, and giving the slots back on that empty claim only to take them again on
 * the next would add two round trips to every invocation's path.
 */
const SLOT_IDLE_MS = 1000;
/**
 * Handlers that take about this long or less are invoked up to MAX_BATCH per slot at once: the thread pool queues
 * what its threads cannot run yet and hands each thread several in one message (handler-pool.ts), sparing a thread
 * wake-up each way per invocation. Slower handlers get one per slot, as before: the wait of the last of a batch
 * stays short.
 */
const BATCH_MS = 20;
const MAX_BATCH = 8;

interface LoadedFunction {
  name: string;
  config: FunctionConfig;
  /** Worker threads (nodejs) or runtime processes (python3, provided). */
  pool: InvocationRunner;
  /** A lease outlives the timeout, so a running invocation is never taken over while it may still finish. */
  leaseMs: number;
}

/**
 * Runs the functions declared in this process's config: claims their due invocations within each function's
 * concurrency limit, runs each in a handler thread with its timeout, and records the outcome — success with its
 * published messages, a retry after backoff, or a final failure sent to the on-failure topic.
 */
export class FunctionWorker extends ClaimLoop<ClaimedInvocation> {
  private readonly functions = new Map<string, LoadedFunction>();
  private topics: Record<string, TopicRules> = {};
  /** Functions an operator paused: not claimed until resumed (reloaded with the topics, on NOTIFY rowcast_config). */
  private paused = new Set<string>();
  /** The connection that claims and holds this process's concurrency slots (session advisory locks), and the slots per function. */
  private readonly session: ClaimSession;
  private readonly held = new Map<string, number[]>();
  /** When each function last had work in this process. */
  private readonly busyAt = new Map<string, number>();
  /** Slots being given back: the connection runs one query at a time, so claims wait for it. */
  private releasing: Promise<void> = Promise.resolve();
  /** Moving average of each function's handler duration (ms), which sizes how far ahead it is claimed. */
  private readonly runMs = new Map<string, number>();
  /** Where results go: batched writes (invocation-recorder.ts). */
  private readonly recorder: InvocationRecorder;
  /** Set by the runtime: the delivery worker, which takes the deliveries of published messages straight from the results' statement. */
  deliveries: DirectClaimant | null = null;
  /** Where handlers' AWS SDK publishes, joining their invocations. */
  private readonly endpoint: InvocationSnsEndpoint;
  /** Aborted at shutdown while still queued in a runner: released as never started. */
  private readonly unstarted = new Set<string>();

  constructor(
    private readonly pool: Pool,
    functions: Record<string, FunctionConfig>,
    private readonly options: FunctionWorkerOptions,
    log: Logger,
    private readonly onPublished: (deliveries: number) => void,
  ) {
    super({ concurrency: options.concurrency, pollInterval: options.pollInterval, maxClaim: 200 }, log);
    // rowcast.invoke (aws_lambda.invoke, MySQL's lambda_async) NOTIFYs while this flag, or a router's, is set: under
    // capture load no router sleeps, and without a flag of its own an invocation queued by SQL waited for the poll.
    this.sleepingFlag = new SleepingFlag(pool, {
      write: (sleeping) => this.writeFlag(sleeping),
      writtenBy: ['rowcast.invocations'],
      pollInterval: options.pollInterval,
    });
    // If the connection breaks, its slots are gone with it: taken again on the next claim.
    this.session = new ClaimSession(pool, log, () => this.held.clear());
    const aws = options.aws ?? awsSchema.parse({});
    this.endpoint = new InvocationSnsEndpoint(pool, aws, log);
    this.recorder = new InvocationRecorder(
      pool,
      log,
      () => this.deliveries,
      onPublished,
      () => this.resultsWritten(),
    );
    for (const [name, config] of Object.entries(functions)) {
      const handlers = invocationRunnerFor(name, config, aws, log, this.endpoint);
      // Nothing runs before a slot is held.
      handlers.setLimit?.(0);
      this.functions.set(name, {
        name,
        config,
        pool: handlers,
        leaseMs: Math.max(options.lease, config.timeout + 30_000),
      });
    }
  }

  /** On the router's row of this process: it makes it at start and removes it at stop (one made here could outlive the process). */
  private async writeFlag(sleeping: boolean): Promise<boolean> {
    const { rowCount } = await this.pool.query('UPDATE rowcast.dispatchers SET functions_sleeping = $2 WHERE id = $1', [
      this.options.owner,
      sleeping,
    ]);
    return Boolean(rowCount);
  }

  async start(): Promise<void> {
    await this.endpoint.listen();
    await this.reloadTopics();
    this.startLoop();
  }

  async reloadTopics(): Promise<void> {
    this.endpoint.forgetTopics();
    this.topics = await listTopics(this.pool);
    this.paused = await pausedFunctions(this.pool);
    this.limitsChanged();
    this.handBackHeld();
  }

  protected limits(): Map<string, number> {
    const limits = new Map<string, number>();
    for (const fn of this.functions.values())
      if (fn.config.concurrency > 0 && !this.paused.has(fn.name)) limits.set(fn.name, fn.config.concurrency);
    return limits;
  }

  protected async claim(wanted: Map<string, number>): Promise<ClaimedInvocation[]> {
    await this.releasing;
    return this.session.run(async (client) => {
      const claimed: ClaimedInvocation[] = [];
      for (const [name, n] of wanted) {
        const fn = this.functions.get(name)!;
        const held = this.held.get(name) ?? [];
        const { taken, items } = await claimInvocations(
          client,
          name,
          n,
          { held, limit: fn.config.concurrency, waiting: this.localCount(name) > 0 },
          fn.leaseMs,
          this.options.owner,
        );
        if (taken.length) {
          this.held.set(name, [...held, ...taken]);
          fn.pool.setLimit?.(held.length + taken.length);
        }
        claimed.push(...items);
      }
      return claimed;
    });
  }

  /** What routing may lease to this process as it creates invocations: as many as its held slots have room for. */
  directInvocationClaim(): DirectInvocationClaim | undefined {
    const wanted = new Map<string, { n: number; leaseMs: number }>();
    for (const [name, n] of this.adoptable()) wanted.set(name, { n, leaseMs: this.functions.get(name)!.leaseMs });
    return wanted.size ? { wanted, owner: this.options.owner, claimedAt: Date.now() } : undefined;
  }

  /**
   * Routing leases invocations to this process for the slots it held when the statement began (directInvocationClaim);
   * if the loop gave those slots back meanwhile, the invocations wait here with no slot to run in, and since they
   * fill the function's room, no claim would take slots again: the function stalled in this process for good. So
   * before each claim, a function with work waiting here and no slot held takes slots (a claim of no invocations),
   * and what waits starts.
   */
  protected override async beforeClaim(): Promise<void> {
    const stranded = [...this.limits().keys()].filter((name) => !this.held.get(name)?.length && this.localCount(name));
    if (!stranded.length) return;
    await this.claim(new Map(stranded.map((name) => [name, 0])));
    this.pumpAll();
  }

  /**
   * Invocations leased to this process by the routing statement that created them. They keep the function busy, as
   * claimed ones do: while work arrives only this way no claim runs, and slots given back as idle would take the
   * function's warm runtime processes with them (a Python process starts in seconds).
   */
  adoptInvocations(claimed: ClaimedInvocation[], direct: DirectInvocationClaim): void {
    for (const inv of claimed) this.busyAt.set(inv.group, Date.now());
    this.adopt(claimed, direct.claimedAt);
  }

  /**
   * Handlers run only in slots held; a runner that queues (worker threads) is given up to MAX_BATCH per slot while
   * the function's handlers are quick, and runs no more than the slots at once (setLimit).
   */
  protected override runLimit(group: string): number {
    const slots = this.held.get(group)?.length ?? 0;
    const fn = this.functions.get(group);
    const ms = this.runMs.get(group);
    if (!fn?.pool.setLimit || ms === undefined) return slots;
    const perSlot = Math.max(1, Math.min(MAX_BATCH, Math.floor(BATCH_MS / Math.max(ms, 0.2))));
    // What waits in the runners takes at most a quarter of the process's concurrency, shared over its functions:
    // the rest stays for what runs, so one function's queue never keeps another's free slots idle.
    const share = Math.floor(this.loopOptions.concurrency / (4 * this.functions.size));
    return slots + Math.min(slots * (perSlot - 1), share);
  }

  /** Routing leases to this process only what its slots can start at once, not what its runners would queue. */
  protected override adoptLimit(group: string): number {
    return this.held.get(group)?.length ?? 0;
  }

  /**
   * Claim ahead as many as the slots get through in about a second at the function's recent pace (none until
   * its pace is known), so the next claim's round trip overlaps the running handlers.
   */
  protected override prefetch(group: string): number {
    const ms = this.runMs.get(group);
    const slots = this.held.get(group)?.length ?? 0;
    return ms === undefined || !slots
      ? 0
      : Math.min(this.loopOptions.maxClaim, Math.floor((slots * 1000) / Math.max(ms, 0.2)));
  }

  protected override unrecorded(): number {
    return this.recorder.backlog;
  }

  protected override unrecordedBytes(): number {
    return this.recorder.backlogBytes;
  }

  protected override sizeOf(item: ClaimedInvocation): number {
    return item.payload.length;
  }

  protected override startBy(item: ClaimedInvocation, claimedAt: number): number {
    const fn = this.functions.get(item.group)!;
    return claimedAt + fn.leaseMs - fn.config.timeout - START_MARGIN_MS;
  }

  /** Nothing of the function left here and none due for a while: its slots go back, for other processes to take. */
  protected override afterClaim(group: string, got: number, local: number): void {
    if (got || local) this.busyAt.set(group, Date.now());
    const held = this.held.get(group);
    const client = this.session.current;
    if (
      !held ||
      !client ||
      !givesSlotsBack({
        held: held.length,
        got,
        local,
        busyAt: this.busyAt.get(group),
        now: Date.now(),
        idleMs: SLOT_IDLE_MS,
      })
    )
      return;
    this.held.delete(group);
    this.functions.get(group)?.pool.setLimit?.(0);
    this.functions.get(group)?.pool.releaseIdle?.();
    this.releasing = this.releasing
      .then(() => releaseSlots(client, group, held))
      .catch((err: Error) => this.log.warn({ err: err.message }, 'could not give function slots back'));
  }

  protected async process(inv: ClaimedInvocation, signal: AbortSignal, startBy: number): Promise<void> {
    const fn = this.functions.get(inv.group)!;
    // Only a valid W3C traceparent reaches the handler's context and the messages it publishes.
    inv.trace = validTraceparent(inv.trace);
    // With tracing, the attempt's span is a child of the event's trace; the handler and what it publishes get the span's context.
    const span = tracing.enabled
      ? startInvocationSpan({ invocationId: inv.id, function: fn.name, attempt: inv.attempt, parent: inv.trace })
      : null;
    if (span) inv.trace = span.traceparent;
    if (tooOldToRun(inv.ageMs, fn.config)) {
      const error = {
        type: 'EventAgeExceeded',
        message: `not run: the invocation is ${Math.round(inv.ageMs / 1000)} s old, over maxEventAge (${Math.round(fn.config.maxEventAge / 1000)} s)`,
        stack: [],
      };
      span?.end({ error: describe(error), outcome: 'failed' });
      await this.fail(fn, inv, error, 'EventAgeExceeded', 0, inv.attempt - 1);
      return;
    }
    const outcome = await fn.pool.invoke(
      {
        id: inv.id,
        payload: inv.payload,
        attempt: inv.attempt,
        clientContext: inv.clientContext,
        trace: inv.trace,
        topics: this.topics,
        // A runner that queues it checks again before it starts it.
        startBy,
      },
      signal,
    );
    if (!outcome.ok && outcome.unstarted) {
      span?.end({ error: outcome.error.message, outcome: 'released' });
      // At shutdown the claim loop hands it back with the others (as started: release() corrects that).
      if (signal.aborted) this.unstarted.add(inv.id);
      else await this.release([inv], false);
      return;
    }
    if (signal.aborted) return span?.end({ error: 'aborted: rowcast is shutting down', outcome: 'released' }); // shutdown: released, not counted as a failure
    span?.end(outcome.ok ? { outcome: 'done' } : { error: describe(outcome.error), outcome: 'error' });
    this.runMs.set(fn.name, 0.8 * (this.runMs.get(fn.name) ?? outcome.durationMs) + 0.2 * outcome.durationMs);
    // Results are recorded in batches; the slot is free for the next invocation meanwhile.
    if (outcome.ok) {
      const completion = this.recorder.complete({
        id: inv.id,
        attempt: inv.attempt,
        lease: inv.lease,
        durationMs: outcome.durationMs,
        state: 'done',
        result: outcome.result,
        messages: outcome.published,
        trace: inv.trace,
        synchronous: inv.synchronous,
      });
      observe.emit('invocation:finished', {
        invocationId: inv.id,
        function: fn.name,
        attempt: inv.attempt,
        outcome: 'done',
        durationMs: outcome.durationMs,
      });
      void completion.then((deliveries) => {
        if (deliveries === null)
          this.log.warn(
            { function: fn.name, invocation: inv.id },
            'invocation finished after its lease was taken over; its result and messages were discarded',
          );
        else if (deliveries) this.onPublished(deliveries);
      });
      return;
    }
    this.log.warn(
      { function: fn.name, invocation: inv.id, attempt: inv.attempt, error: outcome.error.message },
      'invocation failed',
    );
    // A caller waiting for the answer (RequestResponse) gets the error, as from Lambda: no retry.
    const decision = decideInvocationFailure(inv, fn.config);
    if (decision.action === 'retry') {
      const retryAt = Date.now() + decision.delayMs;
      void this.recorder.complete({
        id: inv.id,
        attempt: inv.attempt,
        lease: inv.lease,
        durationMs: outcome.durationMs,
        state: 'pending',
        availableAt: new Date(retryAt),
        error: describe(outcome.error),
        messages: [],
        trace: inv.trace,
        synchronous: inv.synchronous,
      });
      observe.emit('invocation:finished', {
        invocationId: inv.id,
        function: fn.name,
        attempt: inv.attempt,
        outcome: 'retry',
        durationMs: outcome.durationMs,
      });
      setTimeout(() => this.wake(), retryAt - Date.now() + 5).unref();
      return;
    }
    await this.fail(fn, inv, outcome.error, decision.condition, outcome.durationMs, inv.attempt);
  }

  /** Final failure: recorded, and sent to the on-failure topic in the same transaction. */
  private async fail(
    fn: LoadedFunction,
    inv: ClaimedInvocation,
    error: HandlerError,
    condition: FailureCondition,
    durationMs: number,
    invoked: number,
  ): Promise<void> {
    // As on Lambda, destinations are for asynchronous invocations: a synchronous caller gets the error itself.
    const messages =
      fn.config.onFailure && !inv.synchronous
        ? [
            {
              id: failureRecordId(inv.id),
              topic: fn.config.onFailure.topic,
              body: failureRecord({
                invocationId: inv.id,
                functionName: fn.name,
                condition,
                attempts: invoked,
                payload: inv.payload,
                error,
              }),
              contentType: 'application/json',
              subject: `${fn.name} failed: ${condition}`,
              attributes: { function: fn.name, condition },
              groupKey: null,
              dedupKey: null,
            },
          ]
        : [];
    const completion = this.recorder.complete({
      id: inv.id,
      attempt: inv.attempt,
      lease: inv.lease,
      durationMs,
      state: 'failed',
      error: `${describe(error)} (${condition} after ${invoked} attempt${invoked === 1 ? '' : 's'})`,
      // The synchronous caller's answer: Lambda's error payload.
      result: inv.synchronous
        ? JSON.stringify({ errorMessage: error.message, errorType: error.type, stackTrace: error.stack })
        : null,
      messages,
      trace: inv.trace,
      synchronous: inv.synchronous,
    });
    observe.emit('invocation:finished', {
      invocationId: inv.id,
      function: fn.name,
      attempt: inv.attempt,
      outcome: 'failed',
      durationMs,
    });
    void completion.then((deliveries) => deliveries && this.onPublished(deliveries));
  }

  protected async release(items: ClaimedInvocation[], started: boolean): Promise<void> {
    // In flight for the claim loop, but still waiting in a runner's queue: their attempt never began.
    const unstarted = items.filter((i) => this.unstarted.delete(i.id));
    const rest = unstarted.length ? items.filter((i) => !unstarted.includes(i)) : items;
    const release = (list: ClaimedInvocation[], began: boolean) =>
      releaseInvocations(
        this.pool,
        list.map((i) => ({ id: i.id, attempt: i.attempt, lease: i.lease })),
        began,
      );
    await Promise.all([release(rest, started), release(unstarted, false)]);
  }

  protected override async afterDrain(): Promise<void> {
    await Promise.all([...this.functions.values()].map((f) => f.pool.close()));
    await this.endpoint.close();
    await this.recorder.drain();
    await this.releasing;
    this.held.clear();
    await this.session.close((client) => client.query('SELECT pg_advisory_unlock_all()'));
  }
}

const describe = (e: HandlerError): string => `${e.type}: ${e.message}`;

import { randomUUID } from 'node:crypto';
import type { FunctionConfig } from '../config/schema.js';
import { ClaimLoop } from '../dispatcher/claim-loop.js';
import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import { decideAfterFailure } from '../subscriptions/retry-policy.js';
import { type FailureCondition, failureRecord } from './failure-record.js';
import { HandlerPool } from './handler-pool.js';
import { type ClaimedInvocation, claimInvocations, completeInvocation, listTopics, releaseInvocations } from './invocation-store.js';
import type { HandlerError, TopicRules } from './thread-protocol.js';

export interface FunctionWorkerOptions {
  owner: string;
  concurrency: number;
  lease: number;
  pollInterval: number;
}

interface LoadedFunction {
  name: string;
  config: FunctionConfig;
  pool: HandlerPool;
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

  constructor(
    private readonly pool: Pool,
    functions: Record<string, FunctionConfig>,
    private readonly options: FunctionWorkerOptions,
    log: Logger,
    private readonly onPublished: (deliveries: number) => void,
  ) {
    super({ concurrency: options.concurrency, pollInterval: options.pollInterval, maxClaim: 100 }, log);
    for (const [name, config] of Object.entries(functions)) {
      const [modulePath, exportName = 'handler'] = config.handler.split('#') as [string, string?];
      const handlers = new HandlerPool({ functionName: name, modulePath, exportName, timeout: config.timeout, environment: config.environment, memoryLimitMb: config.memoryLimitMb }, log);
      this.functions.set(name, { name, config, pool: handlers, leaseMs: Math.max(options.lease, config.timeout + 30_000) });
    }
  }

  async start(): Promise<void> {
    await this.reloadTopics();
    this.startLoop();
  }

  async reloadTopics(): Promise<void> {
    this.topics = await listTopics(this.pool);
  }

  protected limits(): Map<string, number> {
    const limits = new Map<string, number>();
    for (const fn of this.functions.values()) if (fn.config.concurrency > 0) limits.set(fn.name, fn.config.concurrency);
    return limits;
  }

  protected async claim(wanted: Map<string, number>): Promise<ClaimedInvocation[]> {
    const claimed: ClaimedInvocation[] = [];
    for (const [name, n] of wanted) {
      const fn = this.functions.get(name)!;
      claimed.push(...(await claimInvocations(this.pool, name, n, fn.config.concurrency, fn.leaseMs, this.options.owner)));
    }
    return claimed;
  }

  protected async process(inv: ClaimedInvocation, signal: AbortSignal): Promise<void> {
    const fn = this.functions.get(inv.group)!;
    if (inv.ageMs > fn.config.maxEventAge) {
      const error = { type: 'EventAgeExceeded', message: `not run: the invocation is ${Math.round(inv.ageMs / 1000)} s old, over maxEventAge (${Math.round(fn.config.maxEventAge / 1000)} s)`, stack: [] };
      await this.fail(fn, inv, error, 'EventAgeExceeded', 0, inv.attempt - 1);
      return;
    }
    const outcome = await fn.pool.invoke(
      { id: inv.id, event: parseEvent(inv.payload), attempt: inv.attempt, clientContext: inv.clientContext, trace: inv.trace, topics: this.topics },
      signal,
    );
    if (signal.aborted) return; // shutdown: released, not counted as a failure
    if (outcome.ok) {
      const deliveries = await completeInvocation(this.pool, { id: inv.id, attempt: inv.attempt, durationMs: outcome.durationMs, state: 'done', result: outcome.result, messages: outcome.published, trace: inv.trace });
      if (deliveries === null) this.log.warn({ function: fn.name, invocation: inv.id }, 'invocation finished after its lease was taken over; its result and messages were discarded');
      else if (deliveries) this.onPublished(deliveries);
      return;
    }
    this.log.warn({ function: fn.name, invocation: inv.id, attempt: inv.attempt, error: outcome.error.message }, 'invocation failed');
    const decision = decideAfterFailure(inv.attempt, { ...fn.config, maxRetryAfter: fn.config.maxDelay });
    const retryAt = decision.state === 'pending' ? Date.now() + decision.delayMs : 0;
    if (decision.state === 'pending' && retryAt - Date.now() + inv.ageMs <= fn.config.maxEventAge) {
      await completeInvocation(this.pool, { id: inv.id, attempt: inv.attempt, durationMs: outcome.durationMs, state: 'pending', availableAt: new Date(retryAt), error: describe(outcome.error), messages: [], trace: inv.trace });
      setTimeout(() => this.wake(), retryAt - Date.now() + 5).unref();
      return;
    }
    await this.fail(fn, inv, outcome.error, decision.state === 'dead' ? 'RetriesExhausted' : 'EventAgeExceeded', outcome.durationMs, inv.attempt);
  }

  /** Final failure: recorded, and sent to the on-failure topic in the same transaction. */
  private async fail(fn: LoadedFunction, inv: ClaimedInvocation, error: HandlerError, condition: FailureCondition, durationMs: number, invoked: number): Promise<void> {
    const messages = fn.config.onFailure
      ? [{
          id: randomUUID(),
          topic: fn.config.onFailure.topic,
          body: failureRecord({ invocationId: inv.id, functionName: fn.name, condition, attempts: invoked, payload: inv.payload, error }),
          contentType: 'application/json',
          subject: `${fn.name} failed: ${condition}`,
          attributes: { function: fn.name, condition },
          groupKey: null,
          dedupKey: null,
        }]
      : [];
    const deliveries = await completeInvocation(this.pool, { id: inv.id, attempt: inv.attempt, durationMs, state: 'failed', error: `${describe(error)} (${condition} after ${invoked} attempt${invoked === 1 ? '' : 's'})`, messages, trace: inv.trace });
    if (deliveries) this.onPublished(deliveries);
  }

  protected async release(items: ClaimedInvocation[]): Promise<void> {
    await releaseInvocations(this.pool, items.map((i) => ({ id: i.id, attempt: i.attempt })));
  }

  protected override async afterDrain(): Promise<void> {
    await Promise.all([...this.functions.values()].map((f) => f.pool.close()));
  }
}

function parseEvent(payload: string): unknown {
  try {
    return JSON.parse(payload);
  } catch {
    return payload;
  }
}

const describe = (e: HandlerError): string => `${e.type}: ${e.message}`;

import type { Logger } from '../observability/logger.js';
import { type DirectClaimant, leftForClaims } from '../routing/fan-out.js';
import { ResultBatcher } from '../queue/result-batcher.js';
import type { Pool } from '../store/pool.js';
import { completeInvocations, type InvocationResult } from './invocation-store.js';

/**
 * The function worker's results on their way to the database: a group commit (queue/result-batcher.ts), apart from
 * the worker's claiming and slot handling. A result's publishes and its success record go in one statement with the
 * batch's other results. The first result of a batch is written at once (after this tick), so a lone result waits
 * for nothing.
 */
export class InvocationRecorder {
  private readonly batcher: ResultBatcher<{ result: InvocationResult; done: (deliveries: number | null) => void }>;

  constructor(
    private readonly pool: Pool,
    log: Logger,
    /** The delivery worker (set on the function worker by the runtime), which takes published deliveries directly. */
    private readonly deliveries: () => DirectClaimant | null,
    private readonly onPublished: (deliveries: number) => void,
    /** After each batch written. */
    written?: () => void,
  ) {
    this.batcher = new ResultBatcher({
      write: (batch) => this.write(batch),
      written,
      log,
      what: 'invocation',
      size: 200,
      delayMs: 0,
      sizeOf: ({ result }) => resultBytes(result),
    });
  }

  /** Results not written yet, and about how much memory they hold. */
  get backlog(): number {
    return this.batcher.backlog;
  }
  get backlogBytes(): number {
    return this.batcher.backlogBytes;
  }

  /** Queues a result for the next batch; resolves with its deliveries, or null if its lease had been lost. */
  complete(result: InvocationResult): Promise<number | null> {
    return new Promise((done) => this.batcher.add({ result, done }));
  }

  /** At shutdown: what is queued is written (a few tries). */
  drain(): Promise<void> {
    return this.batcher.drain();
  }

  private async write(batch: { result: InvocationResult; done: (deliveries: number | null) => void }[]): Promise<void> {
    const claimant = this.deliveries();
    const direct = claimant?.directClaim();
    const completed = await completeInvocations(
      this.pool,
      batch.map((b) => b.result),
      direct,
    );
    const { recorded, deliveries, claimed, leased } = completed;
    if (direct && (claimed.length || leased.length)) claimant!.adoptClaimed(claimed, direct, leased);
    // Deliveries are counted per batch, not per invocation: the batch wakes the delivery worker once, for what it
    // did not lease to this process.
    for (const b of batch) b.done(recorded.has(b.result.id) ? 0 : null);
    const published = batch.some((b) => b.result.messages.length && recorded.has(b.result.id));
    if (leftForClaims(claimant, completed, published)) this.onPublished(deliveries);
  }
}

/** About what a result holds until it is written: the handler's return value and the messages it published. */
function resultBytes(result: InvocationResult): number {
  let bytes = (result.result?.length ?? 0) + (result.error?.length ?? 0);
  for (const m of result.messages) {
    bytes += m.body.length;
    for (const body of Object.values(m.protocolBodies ?? {})) bytes += body.length;
  }
  return bytes;
}

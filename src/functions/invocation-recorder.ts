import type { Logger } from '../observability/logger.js';
import type { DirectClaimant } from '../routing/fan-out.js';
import type { Pool } from '../store/pool.js';
import { completeInvocations, type InvocationResult } from './invocation-store.js';

/** Results are written in batches of at most this many. */
const FLUSH_SIZE = 200;

/**
 * The function worker's results on their way to the database: a group commit, apart from the worker's claiming and
 * slot handling. A result's publishes and its success record go in one statement with the batch's other results.
 */
export class InvocationRecorder {
  private results: { result: InvocationResult; done: (deliveries: number | null) => void }[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    /** The delivery worker (set on the function worker by the runtime), which takes published deliveries directly. */
    private readonly deliveries: () => DirectClaimant | null,
    private readonly onPublished: (deliveries: number) => void,
  ) {}

  /**
   * Queues a result for the next batch; resolves with its deliveries, or null if its lease had been lost. As a
   * group commit: the first result of a batch is written at once (after this tick), and whatever finishes while a
   * batch is being written goes with the next, so batches grow with the load and a lone result waits for nothing.
   */
  complete(result: InvocationResult): Promise<number | null> {
    return new Promise((done) => {
      this.results.push({ result, done });
      if (this.results.length === 1 || this.results.length === FLUSH_SIZE) setImmediate(() => void this.flush());
    });
  }

  /** Writes the queued results in one statement (each publish with its success record), one batch at a time. */
  flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    this.flushing = this.flushing.then(async () => {
      const batch = this.results.splice(0, FLUSH_SIZE);
      if (!batch.length) return;
      if (this.results.length) setImmediate(() => void this.flush());
      try {
        const direct = this.deliveries()?.directClaim();
        const { recorded, deliveries, claimed } = await completeInvocations(
          this.pool,
          batch.map((b) => b.result),
          direct,
        );
        if (direct && claimed.length) this.deliveries()!.adoptClaimed(claimed, direct);
        // Deliveries are counted per batch, not per invocation: the batch wakes the delivery worker once.
        for (const b of batch) b.done(recorded.has(b.result.id) ? 0 : null);
        if (deliveries) this.onPublished(deliveries);
      } catch (err) {
        // Kept and tried again: until written, their leases keep other processes from running them again.
        this.log.error(
          { err: (err as Error).message, results: batch.length },
          'recording invocation results failed; retrying',
        );
        this.results.unshift(...batch);
        if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 500);
      }
    });
    return this.flushing;
  }

  /** At shutdown: what is queued is written (a few tries), and no retry stays scheduled. */
  async drain(): Promise<void> {
    for (let i = 0; i < 3 && (this.results.length || i === 0); i++) await this.flush();
    if (this.flushTimer) clearTimeout(this.flushTimer);
  }
}

import type { Logger } from '../observability/logger.js';

/** After a batch failed to write, it is tried again this much later. */
const RETRY_MS = 500;

export interface ResultBatcherOptions<T> {
  /** Writes one batch (one statement, one round trip); throws to have it kept and tried again. */
  write: (batch: T[]) => Promise<void>;
  log: Logger;
  /** What the results are, for the log: "delivery", "invocation". */
  what: string;
  /** Results per batch at most; a full batch is written at once. */
  size: number;
  /** How long after its first result a batch waits for more (0: until the end of this tick). */
  delayMs: number;
  /** After each batch written (the backlog is smaller by it). */
  written?: () => void;
  /** About how much memory a result holds (what it carries to the database), for backlogBytes; default none. */
  sizeOf?: (result: T) => number;
}

/**
 * Results of leased work on their way to the database, as a group commit: a batch is written `delayMs` after its
 * first result or when it is full, one batch at a time, and whatever finishes while one is written goes with the
 * next, so batches grow with the load. A batch that fails to write is kept and tried again: until it is written, its
 * leases keep other processes from doing the work a second time.
 */
export class ResultBatcher<T> {
  private queued: T[] = [];
  /** Each queued result's sizeOf, taken once when added (in step with `queued`; empty without sizeOf). */
  private sizes: number[] = [];
  private scheduled: { cancel(): void } | null = null;
  private writing: Promise<void> = Promise.resolve();
  /**
   * The write queued behind the one in progress, not started yet: results that come meanwhile go with it. A write
   * queued per result would make a chain of promises that grows by one per result while writes lag behind.
   */
  private next: Promise<void> | null = null;
  /** Results of the batch being written, and the bytes of the results added and not written yet (sizeOf). */
  private inWrite = 0;
  private bytes = 0;
  /** After a failed write, no other is tried before this time (epoch ms), however many results come. */
  private retryAt = 0;
  /** The last write failed (drain counts its tries by it). */
  private lastFailed = false;

  constructor(private readonly options: ResultBatcherOptions<T>) {}

  /** Results added and not written yet (queued, or in the batch being written). */
  get backlog(): number {
    return this.queued.length + this.inWrite;
  }

  /** What the backlog's results hold, by the sizeOf option. */
  get backlogBytes(): number {
    return this.bytes;
  }

  add(result: T): void {
    this.queued.push(result);
    if (this.options.sizeOf) {
      const bytes = this.options.sizeOf(result);
      this.sizes.push(bytes);
      this.bytes += bytes;
    }
    // After a failure the scheduled retry takes them.
    if (Date.now() < this.retryAt) return;
    if (this.queued.length >= this.options.size) void this.flush();
    else this.schedule(this.options.delayMs);
  }

  /** Writes the queued results, a batch at a time; resolves once this batch is written or kept for a retry. */
  flush(): Promise<void> {
    this.cancel();
    this.next ??= this.writing = this.writing.then(() => this.writeNext());
    return this.next;
  }

  /** At shutdown: everything queued is written, batch after batch (a failing database gets a few tries). */
  async drain(): Promise<void> {
    for (let failures = 0; failures < 3;) {
      await this.flush();
      if (this.lastFailed) failures++;
      else if (!this.queued.length) break;
    }
    this.cancel();
  }

  private async writeNext(): Promise<void> {
    this.next = null;
    const batch = this.queued.splice(0, this.options.size);
    if (!batch.length) return;
    const sizes = this.sizes.splice(0, batch.length);
    if (this.queued.length) this.schedule(0);
    this.inWrite = batch.length;
    let written = false;
    try {
      await this.options.write(batch);
      written = true;
    } catch (err) {
      this.options.log.error(
        { err: (err as Error).message, results: batch.length },
        `recording ${this.options.what} results failed; retrying`,
      );
      this.queued.unshift(...batch);
      this.sizes.unshift(...sizes);
      this.retryAt = Date.now() + RETRY_MS;
      this.cancel();
      this.schedule(RETRY_MS);
    } finally {
      this.inWrite = 0;
      this.lastFailed = !written;
    }
    if (written) {
      for (const bytes of sizes) this.bytes -= bytes;
      this.options.written?.();
    }
  }

  private schedule(delayMs: number): void {
    if (this.scheduled) return;
    const run = () => {
      this.scheduled = null;
      void this.flush();
    };
    if (delayMs === 0) {
      const immediate = setImmediate(run);
      this.scheduled = { cancel: () => clearImmediate(immediate) };
    } else {
      const timer = setTimeout(run, delayMs);
      this.scheduled = { cancel: () => clearTimeout(timer) };
    }
  }

  private cancel(): void {
    this.scheduled?.cancel();
    this.scheduled = null;
  }
}

import type { LogicalReplicationService } from 'pg-logical-replication';
import type { Pool } from '../store/pool.js';
import { lsnText, lsnValue } from './pgoutput.js';

/** How soon written batches are confirmed to the slot (once the log is flushed past them). */
const CONFIRM_MS = 100;

/**
 * What logical capture (logical-reader.ts) may tell its slot. Batches commit asynchronously (no WAL flush of their
 * own on the writers' 2 cores; the WAL writer or the next synchronous commit flushes them within a fraction of a
 * second), so the slot is told a batch's end only once the log is flushed past its commit: a crash before that
 * loses the batch and its recorded position together, and the slot sends it again.
 */
export class SlotConfirmations {
  /** What the slot may be told: what was written and is flushed, or further while idle (the server's position). */
  position = 0n;
  /** Written batches whose commit may not be on disk yet: their end, and a log position after their commit once known. */
  private unflushed: { end: bigint; wal: bigint | null }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pool: Pool,
    /** The stream being read, if any: confirmations go to it. */
    private readonly service: () => LogicalReplicationService | null,
  ) {}

  /** A stream starts from the recorded position: nothing written since. */
  reset(written: bigint): void {
    this.position = written;
    this.unflushed = [];
  }

  /** A batch ending at `end` was written; its commit may not be on disk yet. */
  written(end: bigint): void {
    this.unflushed.push({ end, wal: null });
  }

  /** Whether written batches still wait for the log to be flushed past them. */
  get waiting(): boolean {
    return this.unflushed.length > 0;
  }

  /** Confirms what is flushed, shortly (one query per round, off the path to routing). */
  soon(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.confirm().catch(() => {});
    }, CONFIRM_MS);
  }

  /** The stream ended: no round is pending. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async confirm(): Promise<void> {
    if (!this.unflushed.length || !this.service()) return;
    // Batches that had committed before this query lie before its insert position: that bounds their commit
    // records (one query per round rather than one per batch, off the path to routing).
    const known = this.unflushed.filter((b) => b.wal === null);
    const { rows } = await this.pool.query<{ inserted: string; flushed: string }>(
      'SELECT pg_current_wal_insert_lsn()::text AS inserted, pg_current_wal_flush_lsn()::text AS flushed',
    );
    for (const b of known) b.wal = lsnValue(rows[0]!.inserted);
    const flushed = lsnValue(rows[0]!.flushed);
    while (this.unflushed.length && this.unflushed[0]!.wal !== null && this.unflushed[0]!.wal <= flushed) {
      const { end } = this.unflushed.shift()!;
      if (end > this.position) this.position = end;
    }
    await this.service()
      ?.acknowledge(lsnText(this.position))
      .catch(() => {});
    if (this.unflushed.length) this.soon();
  }
}

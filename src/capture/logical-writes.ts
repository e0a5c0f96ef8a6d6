import type { Operation } from '../config/capture-schema.js';
import { type Pool, withTransaction } from '../store/pool.js';
import { ident } from '../store/sql.js';
import { lsnText } from './pgoutput.js';
import { WAKE } from './wake.js';

/**
 * The statements logical capture (logical-reader.ts) writes decoded changes with: a batch of committed
 * transactions' changes with the position it ends at, and the chunks of a large transaction staged until its
 * commit. When and in what order they run is the reader's.
 */

/** One decoded change for one capture: what its function is called with. */
export interface Change {
  fn: string;
  /** READ: a backfill's row (a message of the backfill's transaction, see backfill.ts). */
  op: Operation | 'READ';
  old: string | null;
  new: string | null;
  xid: number;
}

/**
 * The transaction being decoded: its changes not yet written, and how many went to rowcast.capture_staging
 * already (a transaction larger than a chunk is staged chunk by chunk and promoted at its commit).
 */
export interface OpenTransaction {
  xid: number;
  /** Where its commit record starts (pgoutput's BEGIN carries it): the key of its staged changes. */
  commitLsn: string;
  /** Already written before a restart: its changes are not collected. */
  skip: boolean;
  changes: Change[];
  /** Characters of the changes' rows held in `changes`. */
  bytes: number;
  staged: number;
  /** The part of the last staged change, and its function and operation: a new pair starts a new part. */
  part: number;
  partOf: string;
}

/** Writes the changes held of an open transaction to rowcast.capture_staging (migration 014). */
export async function stageChanges(writer: Pool, tx: OpenTransaction): Promise<void> {
  const changes = tx.changes;
  tx.changes = [];
  tx.bytes = 0;
  const parts = changes.map((c) => {
    const of = `${c.fn}\0${c.op}`;
    if (of !== tx.partOf) {
      tx.part++;
      tx.partOf = of;
    }
    return tx.part;
  });
  // What a reader left staged (a transaction it did not finish) goes first. This process streams the slot
  // now, so no other reader is staging.
  if (!tx.staged) await writer.query('TRUNCATE rowcast.capture_staging');
  await writer.query(
    `INSERT INTO rowcast.capture_staging (lsn, seq, part, function_name, op, old_row, new_row, xid)
     SELECT $1::pg_lsn, $2::bigint + c.ord - 1, c.part, c.fn, c.op, c.old, c.new, c.xid
       FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::bigint[]) WITH ORDINALITY AS c(part, fn, op, old, new, xid, ord)`,
    [
      tx.commitLsn,
      tx.staged,
      parts,
      changes.map((c) => c.fn),
      changes.map((c) => c.op),
      changes.map((c) => c.old),
      changes.map((c) => c.new),
      changes.map((c) => c.xid),
    ],
  );
  tx.staged += changes.length;
}

/**
 * Writes a batch of committed changes through their captures' functions, and moves the slot's recorded position
 * from `from` to `end`, in one transaction.
 */
export async function writeChanges(
  writer: Pool,
  slot: string,
  from: bigint,
  end: bigint,
  batch: Change[],
): Promise<void> {
  // Runs of changes of the same capture and operation, in commit order: one statement each.
  const runs: Change[][] = [];
  for (const change of batch) {
    const last = runs.at(-1);
    if (last && last[0]!.fn === change.fn && last[0]!.op === change.op) last.push(change);
    else runs.push([change]);
  }
  const capture = (run: Change[], first: number) => ({
    sql: `SELECT rowcast.${ident(run[0]!.fn)}($${first}, $${first + 1}::jsonb[], $${first + 2}::jsonb[], $${first + 3}::bigint[])`,
    values: [run[0]!.op, run.map((c) => c.old), run.map((c) => c.new), run.map((c) => c.xid)],
  });
  // Fenced: from where this reader last wrote, or refused (the whole transaction rolls back).
  const progress = (first: number) => ({
    sql: `SELECT rowcast.advance_capture_progress($${first}, $${first + 1}::pg_lsn, $${first + 2}::pg_lsn)`,
    values: [slot, lsnText(from), lsnText(end)],
  });
  if (runs.length === 1) {
    // The usual batch: one statement, one round trip (its events, the position, the wake-up commit together).
    const c = capture(runs[0]!, 1);
    const p = progress(5);
    await writer.query(
      `WITH captured AS (${c.sql}), progress AS (${p.sql})
       SELECT (SELECT count(*) FROM captured) AS runs, (SELECT count(*) FROM progress) AS progress, (${WAKE}) AS woken`,
      [...c.values, ...p.values],
    );
  } else {
    await withTransaction(writer, async (client) => {
      for (const run of runs) {
        const c = capture(run, 1);
        await client.query(c.sql, c.values);
      }
      const p = progress(1);
      await client.query(p.sql, p.values);
      await client.query(WAKE);
    });
  }
}

/**
 * 1. Capture overhead: commits/s of single-row INSERTs from 1 and 8 writers on the reference table, bare vs with
 * a rowcast capture (row payload) while a rowcast process runs (so the wake-up path is the real one): by a row
 * trigger, and by logical replication (no trigger; the process decodes the write-ahead log and writes the events
 * meanwhile, on the same 2 cores). And rows/s of 100-row INSERTs from 8 writers: bare vs row-level vs
 * statement-level vs logical capture, and the rate at which the logical capture's rows become events. Bare is
 * measured with no rowcast process running (its replication slot inactive).
 */
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import type { BenchContext, Scenario } from '../support/context.js';
import { createScratchDatabase, insertOneSql, referenceTableDdl } from '../support/postgres.js';
import type { Measurement } from '../support/report.js';
import { applyBenchConfig, startBenchRowcast } from '../support/bench-rowcast.js';
import type { RowcastProcess } from '../../test/support/rowcast-process.js';
import { spread } from '../support/stats.js';
import { commitsPerSecond, IdSequence, insertBatchSql } from '../support/writers.js';

const CONFIG: RowcastConfigInput = {
  topics: { changes: {} },
  captures: {
    row: { table: 'captured', topic: 'changes', operations: ['INSERT'] },
    statement: { table: 'captured_statement', topic: 'changes', operations: ['INSERT'], mode: 'statement' },
    logical: { table: 'captured_logical', topic: 'changes', operations: ['INSERT'], mode: 'logical' },
  },
};

/** Rows of the logically captured table that are not events (yet, or ever: see skipLogicalBacklog). */
async function rowsWithoutEvents(pool: Pool): Promise<number> {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*) FROM captured_logical) - (SELECT count(*) FROM rowcast.events WHERE capture = 'logical') AS n`,
  );
  return Number(rows[0].n);
}

/**
 * Waits until every row written to the logically captured table is an event (the slot has caught up), but for the
 * `skipped` rows that skipLogicalBacklog left out.
 */
async function logicalCaughtUp(pool: Pool, skipped: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await rowsWithoutEvents(pool)) === skipped) return;
    if (Date.now() > deadline) throw new Error(`logical capture did not catch up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * After a 100-row measurement the slot holds half a million rows that the reader would take a minute or more to
 * decode, only for the next measurement to wait for it: with the process stopped, the slot is advanced past them
 * instead (PostgreSQL's pg_replication_slot_advance). Returns how many rows of the table will never be events.
 */
async function skipLogicalBacklog(pool: Pool, stopReader: () => Promise<void>): Promise<number> {
  await stopReader();
  for (let tries = 0; ; tries++) {
    try {
      // Once its reader is gone (its walsender may take a moment to exit).
      await pool.query(
        `SELECT pg_replication_slot_advance(slot_name, pg_current_wal_lsn()) FROM pg_replication_slots WHERE database = current_database()`,
      );
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || tries > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return rowsWithoutEvents(pool);
}

async function countRows(pool: Pool, table: string): Promise<number> {
  const { rows } = await pool.query(`SELECT count(*)::bigint AS n FROM ${pg.escapeIdentifier(table)}`);
  return Number(rows[0].n);
}

/** Waits until every logically captured row is an event (but the skipped ones), or the deadline; returns how many are not. */
async function decodedBy(pool: Pool, skipped: number, deadline: number): Promise<number> {
  for (;;) {
    const left = (await rowsWithoutEvents(pool)) - skipped;
    if (left <= 0 || Date.now() > deadline) return Math.max(0, left);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function slotStreamed(pool: Pool, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !(
      await pool.query(`SELECT bool_or(active) AS active FROM pg_replication_slots WHERE database = current_database()`)
    ).rows[0].active
  ) {
    if (Date.now() > deadline)
      throw new Error(`the restarted rowcast process did not stream its slot within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const captureOverhead: Scenario = {
  id: 'capture',
  title: 'capture overhead: INSERT commits/s, bare vs captured',
  async run(ctx: BenchContext) {
    const { profile, results } = ctx;
    const db = await createScratchDatabase(ctx.server, 'capture');
    // A DATABASE_URL server without wal_level = logical: the logical rows stay empty (their note says why).
    const logical = ctx.server.settings.wal_level === 'logical';
    if (!logical)
      ctx.log(`capture: wal_level is ${ctx.server.settings.wal_level}, not logical: logical capture is not measured`);
    const config = logical
      ? CONFIG
      : { ...CONFIG, captures: { row: CONFIG.captures!.row!, statement: CONFIG.captures!.statement! } };
    const withLogical = (tables: string[]) => tables.filter((t) => logical || t !== 'captured_logical');
    let rowcast: RowcastProcess | undefined;
    try {
      for (const t of ['bare', 'captured', 'captured_statement', 'captured_logical'])
        await db.pool.query(referenceTableDdl(t));
      await applyBenchConfig(db.pool, config);
      rowcast = startBenchRowcast(db.url, config);
      await rowcast.started(db.pool);
      const ids = new IdSequence();
      const { durationMs, warmupMs, rowsPerStatement } = profile.capture;

      const single: Record<string, number[]> = {};
      const multi: Record<string, number[]> = {};
      /** Rows/s at which the logical 100-row measurement's rows became events (decoding goes on after the writers). */
      const decoded: number[] = [];
      let skipped = 0;
      const restart = async () => {
        rowcast = startBenchRowcast(db.url, config);
        await rowcast.started(db.pool);
        await slotStreamed(db.pool, 60_000); // the next measurement pays for decoding from its first row
      };
      const run = async (key: string, table: string, writers: number, rows: number) => {
        // Each measurement starts with everything captured and routed, so a backlog from the last one costs it nothing.
        if (logical) await logicalCaughtUp(db.pool, skipped, 120_000);
        await rowcast!.ready(db.pool, 120_000);
        // Bare is bare: no rowcast process, so no slot decoding the bare rows' log on the same cores meanwhile.
        const bareAlone = logical && table === 'bare';
        if (bareAlone) await rowcast!.stop();
        const rowsBefore = await countRows(db.pool, table);
        const began = Date.now();
        const sql = rows === 1 ? insertOneSql(table) : insertBatchSql(table)(rows);
        const perSecond = await commitsPerSecond(db.url, {
          writers,
          durationMs,
          warmupMs,
          sql,
          params: () => [ids.take(rows)],
        });
        (rows === 1 ? single : multi)[key] ??= [];
        (rows === 1 ? single : multi)[key]!.push(perSecond * rows);
        ctx.log(
          `capture: ${key}: ${Math.round(perSecond * rows).toLocaleString('en-US')} ${rows === 1 ? 'commits' : 'rows'}/s`,
        );
        if (table === 'captured_logical' && rows > 1) {
          const written = (await countRows(db.pool, table)) - rowsBefore;
          const left = await decodedBy(db.pool, skipped, began + profile.capture.decodeMs);
          decoded.push(((written - left) * 1000) / (Date.now() - began));
          ctx.log(
            `capture: ${key}: rows became events at ${Math.round(decoded.at(-1)!).toLocaleString('en-US')}/s${left ? ` (${left} not yet at the ${profile.capture.decodeMs / 1000} s cap)` : ''}`,
          );
        }
        if (bareAlone || (table === 'captured_logical' && rows > 1)) {
          // Whatever the slot has not decoded yet (bare rows, or the rest of a 100-row backlog) is skipped.
          skipped = await skipLogicalBacklog(db.pool, () => rowcast!.stop());
          await restart();
        }
      };
      for (let rep = 0; rep < profile.reps; rep++) {
        ctx.log(`capture: repetition ${rep + 1}/${profile.reps}`);
        // Bare and captured alternate in order, so a drift of the machine does not favour either.
        const order = withLogical(
          rep % 2 ? ['captured_logical', 'captured', 'bare'] : ['bare', 'captured', 'captured_logical'],
        );
        for (const writers of [1, 8]) for (const table of order) await run(`${writers}w ${table}`, table, writers, 1);
        const multiOrder = withLogical(
          rep % 2
            ? ['captured_logical', 'captured_statement', 'captured', 'bare']
            : ['bare', 'captured', 'captured_statement', 'captured_logical'],
        );
        for (const table of multiOrder) {
          await run(table, table, 8, rowsPerStatement);
        }
      }

      const add = (name: string, unit: string, values: number[] | undefined, note?: string): Measurement =>
        results.add({ scenario: 'capture', name, unit, value: values?.length ? spread(values) : null, note });
      for (const writers of [1, 8]) {
        const label = `single-row INSERT, ${writers} writer${writers > 1 ? 's' : ''}`;
        const bare = add(`${label}: bare`, 'commits/s', single[`${writers}w bare`]);
        const captured = add(`${label}: rowcast capture (row trigger)`, 'commits/s', single[`${writers}w captured`]);
        results.ratio(captured, bare, 'bare');
        const logical = add(
          `${label}: rowcast capture (logical replication)`,
          'commits/s',
          single[`${writers}w captured_logical`],
        );
        const r = results.ratio(logical, bare, 'bare');
        if (writers === 8) results.target(logical, '≥ 0.80× bare', r === undefined ? undefined : r >= 0.8);
      }
      const label = `${rowsPerStatement}-row INSERT, 8 writers`;
      const bare = add(`${label}: bare`, 'rows/s', multi.bare);
      const row = add(`${label}: row-level capture`, 'rows/s', multi.captured);
      results.ratio(row, bare, 'bare');
      const statement = add(`${label}: statement-level capture`, 'rows/s', multi.captured_statement);
      const toBare = results.ratio(statement, bare, 'bare');
      const toRow = statement.value && row.value ? statement.value.median / row.value.median : undefined;
      if (toBare !== undefined && toRow !== undefined) {
        results.target(
          statement,
          `≥ 1.4× row-level (${toRow.toFixed(2)}×) and ≥ 0.40× bare`,
          toRow >= 1.4 && toBare >= 0.4,
        );
      }
      results.ratio(add(`${label}: logical capture`, 'rows/s', multi.captured_logical), bare, 'bare');
      // The writers' figure above ends when they stop; this one when their rows are events.
      results.ratio(
        add(
          `${label}: logical capture, rows → events`,
          'rows/s',
          decoded,
          logical ? undefined : 'wal_level is not logical',
        ),
        bare,
        'bare',
      );
    } finally {
      await rowcast?.stop();
      await db.drop();
    }
  },
};

import type { CaptureConfig } from '../config/capture-schema.js';
import type { SourceConfig } from '../config/source-schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import type { Pool, PoolClient } from '../store/pool.js';
import { ident, literal, qualified } from '../store/sql.js';
import { openSourceBatcher, type SourceBatcher } from './backfill-source.js';
import { BACKFILL_PREFIX } from './pgoutput.js';
import { WAKE } from './wake.js';
import { isLogical } from './logical-ddl.js';
import { readTableInfo } from './table-info.js';
import { backfillEventsSql } from './trigger-ddl.js';

/** A backfill's state as rowcast.backfills keeps it (the CLI, the admin API and the dashboard show it). */
export interface BackfillProgress {
  capture: string;
  state: 'running' | 'done' | 'failed';
  where: string | null;
  batch: number;
  rowsSent: number;
  /** Rows that matched when it started: an estimate (rows inserted meanwhile are sent too). */
  rowsTotal: number | null;
  lastKey: Record<string, unknown> | null;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface BackfillOptions {
  /** An SQL condition over the table's columns: only the rows it holds for are sent. */
  where?: string;
  /** Rows per batch (one transaction each); default 1000. */
  batch?: number;
  /** Start from the first row again, even if an earlier backfill stopped half-way. */
  restart?: boolean;
  onProgress?: (progress: BackfillProgress) => void;
  /** Called once the backfill is checked and recorded as running, before its first batch. */
  onStarted?: (progress: BackfillProgress) => void;
  /** Stops after the current batch; the backfill stays resumable. */
  signal?: AbortSignal;
  /** The config's sources: a capture of another server's table is backfilled there (backfill-source.ts). */
  sources?: Record<string, SourceConfig>;
}

export const DEFAULT_BATCH = 1000;
export const MAX_BATCH = 100_000;
/** One backfill per capture at a time, whichever process runs it: a session advisory lock (two-key form). */
const LOCK_SQL = `SELECT pg_try_advisory_lock(hashtext('rowcast.backfill'), hashtext($1)) AS ok`;
const UNLOCK_SQL = `SELECT pg_advisory_unlock(hashtext('rowcast.backfill'), hashtext($1))`;

const PROGRESS_SQL = `SELECT capture, state, where_sql, batch, rows_sent::float8 AS rows_sent, rows_total::float8 AS rows_total, last_key, last_key::text AS last_key_text, error, started_at, updated_at, finished_at
  FROM rowcast.backfills WHERE capture = $1`;

interface ProgressRow {
  capture: string;
  state: BackfillProgress['state'];
  where_sql: string | null;
  batch: number;
  rows_sent: number;
  rows_total: number | null;
  last_key: Record<string, unknown> | null;
  last_key_text: string | null;
  error: string | null;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const toProgress = (r: ProgressRow): BackfillProgress => ({
  capture: r.capture,
  state: r.state,
  where: r.where_sql,
  batch: r.batch,
  rowsSent: r.rows_sent,
  rowsTotal: r.rows_total,
  lastKey: r.last_key,
  error: r.error,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  finishedAt: r.finished_at,
});

/** The last backfill of a capture, or null if it never had one. */
export async function getBackfill(pool: Pool | PoolClient, capture: string): Promise<BackfillProgress | null> {
  const { rows } = await pool.query<ProgressRow>(PROGRESS_SQL, [capture]);
  return rows[0] ? toProgress(rows[0]) : null;
}

/** Where a backfill resumes: its row, with its last key as jsonb text (exact digits). */
async function resumePoint(
  client: PoolClient,
  capture: string,
): Promise<(BackfillProgress & { lastKeyText: string | null }) | null> {
  const { rows } = await client.query<ProgressRow>(PROGRESS_SQL, [capture]);
  return rows[0] ? { ...toProgress(rows[0]), lastKeyText: rows[0].last_key_text } : null;
}

/**
 * Sends the rows a captured table holds now as events with op READ (shaped as the capture's INSERT events), in
 * primary-key order, one transaction per batch, each recording where it ended (rowcast.backfills):
 *
 * - Resumable: a backfill that stopped (a crash, a signal, an error) continues after the last batch it committed.
 * - In order with live changes: each batch reads its rows FOR SHARE, so a writer changing one of them waits for
 *   the batch's commit, and a change committed before it is read as it is now. A trigger capture's READ events are
 *   written in the batch's transaction, as the writers' events are in theirs. A logical capture's are written to
 *   the write-ahead log as a message of the batch's transaction (pg_logical_emit_message), which the reader turns
 *   into events in commit order with the live changes (a READ after the UPDATE it already shows, never before).
 * - Bounded memory: one batch of rows at a time.
 */
/**
 * Starts a backfill in the background (the admin API): resolves with its progress once it is checked and
 * running, or rejects with what prevents it (an unknown capture, a bad condition, one already running). A failure
 * later is recorded in rowcast.backfills, where GET …/backfill reads it.
 */
export function startBackfill(
  pool: Pool,
  capture: string,
  options: Omit<BackfillOptions, 'onStarted'> = {},
): Promise<BackfillProgress> {
  return new Promise((resolve, reject) => {
    runBackfill(pool, capture, { ...options, onStarted: resolve }).then(resolve, reject);
  });
}

/**
 * A backfill's batch size as given (the CLI's --batch text, the admin API's number or text): rows per batch, a whole
 * number from 1 to MAX_BATCH; nothing given is the default (or, resuming, the stopped backfill's).
 */
export function batchOption(value: string | number | undefined): number | undefined {
  if (value === undefined || (typeof value === 'string' && value.trim() === '')) return undefined;
  const batch = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH)
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `batch must be a whole number of rows from 1 to ${MAX_BATCH}, not ${JSON.stringify(value)}.`,
    );
  return batch;
}

export async function runBackfill(
  pool: Pool,
  capture: string,
  options: BackfillOptions = {},
): Promise<BackfillProgress> {
  const batchGiven = batchOption(options.batch);
  const client = await pool.connect();
  let locked = false;
  /** From the moment this run owns the backfill's row: a failure after it is recorded there. */
  let started = false;
  let closeRemote: (() => Promise<void> | undefined) | null = null;
  try {
    const { rows: found } = await client.query<{
      schema_name: string;
      table_name: string;
      function_name: string;
      capture: CaptureConfig;
    }>(
      `SELECT schema_name, table_name, function_name, settings -> 'capture' AS capture FROM rowcast.captures WHERE name = $1`,
      [capture],
    );
    const row = found[0];
    if (!row)
      throw new RowcastError(
        ErrorCodes.NOT_FOUND,
        `There is no capture "${capture}"; declare it in the config and run rowcast apply.`,
      );
    let remote: SourceBatcher | null = null;
    let table: Awaited<ReturnType<typeof readTableInfo>> = null;
    let logical = false;
    if (row.capture.source !== undefined) {
      const source = options.sources?.[row.capture.source];
      if (!source) {
        throw new RowcastError(
          ErrorCodes.CONFLICT,
          `capture ${capture} reads source ${row.capture.source}, which the config given to this process does not declare; run the backfill with the config that declares sources.${row.capture.source}.`,
        );
      }
      remote = await openSourceBatcher(capture, row.capture.source, source, row.schema_name, row.table_name);
    } else {
      table = await readTableInfo(client, row.schema_name, row.table_name);
      if (!table)
        throw new RowcastError(
          ErrorCodes.CONFLICT,
          `capture ${capture}: table ${row.schema_name}.${row.table_name} does not exist any more.`,
        );
      if (!table.primaryKey.length) {
        throw new RowcastError(
          ErrorCodes.CONFLICT,
          `capture ${capture}: ${row.schema_name}.${row.table_name} has no primary key; a backfill goes through the rows in key order to resume where it stopped. Add a primary key.`,
        );
      }
      logical = isLogical(row.capture);
      if (logical) await checkLogical(client, capture, row.function_name);
    }
    closeRemote = () => remote?.close();

    locked = (await client.query<{ ok: boolean }>(LOCK_SQL, [capture])).rows[0]!.ok;
    if (!locked)
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `A backfill of capture ${capture} is running in another process; wait for it, or see its progress with GET /api/captures/${capture}/backfill.`,
      );

    const previous = await resumePoint(client, capture);
    const fresh = options.restart || !previous || previous.state === 'done';
    if (!fresh && options.where !== undefined && options.where !== (previous.where ?? undefined)) {
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: the backfill that stopped half-way chose its rows with ${previous.where === null ? 'no --where' : `--where ${JSON.stringify(previous.where)}`}; resume it without --where (or the same one), or start over with --restart.`,
      );
    }
    const where = fresh ? (options.where ?? null) : previous.where;
    const batch = batchGiven ?? (fresh ? DEFAULT_BATCH : previous.batch);
    const condition = where === null ? '' : ` AND (${where})`;
    if (fresh) {
      let total: number;
      if (remote) total = await remote.count(where);
      else
        try {
          // A parameter keeps this to one statement (the extended protocol), as the batches' queries are.
          total = (
            await client.query<{ n: number }>(
              `SELECT count(*)::float8 AS n FROM ${qualified(table!.schema, table!.name)} AS t WHERE $1::boolean${condition}`,
              [true],
            )
          ).rows[0]!.n;
        } catch (err) {
          throw new RowcastError(
            ErrorCodes.INVALID_ARGUMENT,
            `--where ${JSON.stringify(where)} is not a valid condition on ${table!.schema}.${table!.name}: ${(err as Error).message}`,
            [],
            { cause: err },
          );
        }
      await client.query(
        `INSERT INTO rowcast.backfills (capture, where_sql, batch, state, rows_total) VALUES ($1, $2, $3, 'running', $4)
         ON CONFLICT (capture) DO UPDATE SET where_sql = EXCLUDED.where_sql, batch = EXCLUDED.batch, state = 'running', last_key = NULL, rows_sent = 0,
           rows_total = EXCLUDED.rows_total, error = NULL, started_at = now(), updated_at = now(), finished_at = NULL`,
        [capture, where, batch, total],
      );
    } else {
      await client.query(
        `UPDATE rowcast.backfills SET state = 'running', batch = $2, error = NULL, updated_at = now() WHERE capture = $1`,
        [capture, batch],
      );
    }

    started = true;
    options.onStarted?.((await getBackfill(client, capture))!);
    if (remote)
      return await sourceBatches(client, capture, remote, fresh ? null : previous.lastKeyText, batch, where, options);
    const tableInfo = table!;
    const tableSql = qualified(tableInfo.schema, tableInfo.name);
    const keyList = tableInfo.primaryKey.map((c) => `t.${ident(c)}`).join(', ');
    // The next batch: rows after the last key sent, in key order, locked FOR SHARE until the batch commits. The
    // last key is compared as values of the key's own types (jsonb_populate_record, a stable expression: the
    // primary key's index finds where to start); the condition sees only t. Keys travel as jsonb text, so that
    // a bigint key keeps its digits.
    const lastValues = tableInfo.primaryKey
      .map((c) => `(jsonb_populate_record(NULL::${tableSql}, $2::jsonb)).${ident(c)}`)
      .join(', ');
    const keyOf = (alias: string) =>
      `jsonb_build_object(${tableInfo.primaryKey.map((c) => `${literal(c)}, ${alias}.${ident(c)}`).join(', ')})::text`;
    const rowsOf = (next: boolean) =>
      `SELECT t.* FROM ${tableSql} AS t WHERE ${next ? `(${keyList}) > (${lastValues})` : 'true'}${condition} ORDER BY ${keyList} LIMIT $1 FOR SHARE OF t`;
    // A trigger capture's batch is one statement: the rows, their events (in key order), the count and the last key.
    const batchSql = (next: boolean) => {
      if (logical) return `SELECT to_jsonb(t)::text AS row, ${keyOf('t')} AS key FROM (${rowsOf(next)}) AS t`;
      const newKeys = tableInfo.primaryKey.map((c) => `new.${ident(c)}`).join(', ');
      return `WITH batch AS MATERIALIZED (${rowsOf(next)}),
        written AS (${backfillEventsSql(capture, row.capture, tableInfo, 'batch', newKeys)} RETURNING 1)
        SELECT (SELECT count(*)::int FROM batch) AS n, (SELECT ${keyOf('b')} FROM batch AS b ORDER BY ${tableInfo.primaryKey.map((c) => `b.${ident(c)} DESC`).join(', ')} LIMIT 1) AS key,
               (SELECT count(*) FROM written) AS events`;
    };
    const first = batchSql(false);
    const next = batchSql(true);
    let lastKey = fresh ? null : previous.lastKeyText;
    for (;;) {
      if (options.signal?.aborted) break;
      await client.query('BEGIN');
      let sent: number;
      try {
        const params = lastKey === null ? [batch] : [batch, lastKey];
        if (logical) {
          const { rows } = await client.query<{ row: string; key: string }>(lastKey === null ? first : next, params);
          sent = rows.length;
          if (sent) {
            const content = `{"capture":${JSON.stringify(capture)},"rows":[${rows.map((r) => r.row).join(',')}]}`;
            await client.query(`SELECT pg_logical_emit_message(true, $1, $2::text)`, [BACKFILL_PREFIX, content]);
            lastKey = rows.at(-1)!.key;
          }
        } else {
          const { rows } = await client.query<{ n: number; key: string | null; events: string }>(
            lastKey === null ? first : next,
            params,
          );
          sent = rows[0]!.n;
          if (sent) {
            lastKey = rows[0]!.key;
            if (Number(rows[0]!.events)) await client.query(WAKE);
          }
        }
        await client.query(
          `UPDATE rowcast.backfills SET last_key = $2::jsonb, rows_sent = rows_sent + $3, updated_at = now(),
             state = CASE WHEN $3 = 0 THEN 'done' ELSE state END, finished_at = CASE WHEN $3 = 0 THEN now() END
           WHERE capture = $1`,
          [capture, lastKey, sent],
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
      const progress = (await getBackfill(client, capture))!;
      options.onProgress?.(progress);
      if (!sent) return progress;
    }
    return (await getBackfill(client, capture))!;
  } catch (err) {
    if (started) {
      const message = (err as Error).message;
      await client
        .query(`UPDATE rowcast.backfills SET state = 'failed', error = $2, updated_at = now() WHERE capture = $1`, [
          capture,
          message,
        ])
        .catch(() => {});
    }
    throw err;
  } finally {
    await closeRemote?.();
    if (locked) await client.query(UNLOCK_SQL, [capture]).catch(() => {});
    client.release();
  }
}

/**
 * The batches of a source's backfill: each is committed on the source (its rows reach the store through the
 * source's reader), then recorded in rowcast.backfills. A crash between the two sends that batch again on resume:
 * the same rows as READ events twice, each time as the row then was (never older after newer).
 */
async function sourceBatches(
  client: PoolClient,
  capture: string,
  remote: SourceBatcher,
  resumeKey: string | null,
  batch: number,
  where: string | null,
  options: BackfillOptions,
): Promise<BackfillProgress> {
  let lastKey = resumeKey;
  for (;;) {
    if (options.signal?.aborted) return (await getBackfill(client, capture))!;
    const result = await remote.send(lastKey, batch, where);
    lastKey = result.lastKey;
    await client.query(
      `UPDATE rowcast.backfills SET last_key = $2::jsonb, rows_sent = rows_sent + $3, updated_at = now(),
         state = CASE WHEN $3 = 0 THEN 'done' ELSE state END, finished_at = CASE WHEN $3 = 0 THEN now() END
       WHERE capture = $1`,
      [capture, lastKey, result.sent],
    );
    const progress = (await getBackfill(client, capture))!;
    options.onProgress?.(progress);
    if (!result.sent) return progress;
  }
}

/** A logical capture's backfill needs messages in pgoutput (PostgreSQL 14) and a capture function that takes READ. */
async function checkLogical(client: PoolClient, capture: string, functionName: string): Promise<void> {
  const { rows } = await client.query<{ version: number; read: boolean | null }>(
    `SELECT current_setting('server_version_num')::int AS version,
            (SELECT p.prosrc LIKE '%op = ''READ''%' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'rowcast' AND p.proname = $1) AS read`,
    [functionName],
  );
  if (rows[0]!.version < 140000) {
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `capture ${capture} is logical, and its backfill goes through the write-ahead log as logical messages, which PostgreSQL decodes from version 14; upgrade, or backfill with mode 'row'.`,
    );
  }
  if (!rows[0]!.read)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `capture ${capture}: its capture function predates backfills; run rowcast apply once, then the backfill.`,
    );
}

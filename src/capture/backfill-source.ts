import { createHash } from 'node:crypto';
import type mysql from 'mysql2/promise';
import type { SourceConfig } from '../config/source-schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import type { PoolClient } from '../store/pool.js';
import { ident, literal, qualified } from '../store/sql.js';
import { BACKFILL_PREFIX } from './pgoutput.js';
import { connectSource, isMariadb, mysqlIdent } from './mysql/mysql-source.js';
import { connectPostgresSource } from './postgres/postgres-source.js';
import { readTableInfo } from './table-info.js';

/**
 * One source's side of a backfill (backfill.ts keeps the progress in the store): counts the rows, and sends one
 * batch after a key in one transaction on the source, in which the rows are read FOR SHARE and handed to the
 * source's reader through the source's own log, so that the reader turns them into READ events in commit order
 * with the table's changes.
 */
export interface SourceBatcher {
  /** Rows matching the condition now (the progress bar's estimate); a bad condition is an INVALID_ARGUMENT. */
  count(where: string | null): Promise<number>;
  /** Sends the next batch after lastKey (a JSON object of the key's columns, as text); committed on the source when it returns. */
  send(lastKey: string | null, batch: number, where: string | null): Promise<{ sent: number; lastKey: string | null }>;
  close(): Promise<void>;
}

/** The InnoDB table a MySQL capture's backfill copies each batch through (one per capture, in the table's database, always empty). */
export const backfillTableName = (capture: string): string =>
  `rowcast_backfill_${createHash('sha256').update(capture).digest('hex').slice(0, 16)}`;

export async function openSourceBatcher(
  capture: string,
  sourceName: string,
  source: SourceConfig,
  schema: string,
  table: string,
): Promise<SourceBatcher> {
  return source.kind === 'mysql'
    ? mysqlBatcher(capture, sourceName, source, schema, table)
    : postgresBatcher(capture, sourceName, source, schema, table);
}

const badWhere = (where: string | null, table: string, err: unknown) =>
  new RowcastError(
    ErrorCodes.INVALID_ARGUMENT,
    `--where ${JSON.stringify(where)} is not a valid condition on ${table}: ${(err as Error).message}`,
    [],
    { cause: err },
  );

/**
 * A PostgreSQL source: each batch reads its rows FOR SHARE and writes them into the source's write-ahead log as a
 * logical message of its transaction (pg_logical_emit_message, prefix rowcast.backfill: nothing is stored in a
 * table there). Values travel as PostgreSQL's text with their type oids, as pgoutput sends a change's, so the
 * reader converts a READ row exactly as an INSERT's.
 */
async function postgresBatcher(
  capture: string,
  sourceName: string,
  source: Extract<SourceConfig, { kind: 'postgres' }>,
  schema: string,
  name: string,
): Promise<SourceBatcher> {
  const c = await connectPostgresSource(sourceName, source, 'rowcast backfill');
  try {
    // The reader's text forms (postgres-reader.ts): ISO dates, every float digit.
    await c.query(`SET datestyle = 'ISO, YMD'; SET intervalstyle = 'postgres'; SET extra_float_digits = 3`);
    const version = Number(
      (await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v,
    );
    if (version < 140000) {
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: source ${sourceName} runs PostgreSQL ${Math.floor(version / 10000)}; a backfill goes through its write-ahead log as logical messages, which PostgreSQL decodes from version 14. Upgrade the source.`,
      );
    }
    const info = await readTableInfo(c as unknown as PoolClient, schema, name);
    if (!info)
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: source ${sourceName} has no table ${schema}.${name} any more.`,
      );
    if (!info.primaryKey.length) {
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: ${schema}.${name} on source ${sourceName} has no primary key; a backfill goes through the rows in key order to resume where it stopped. Add a primary key.`,
      );
    }
    const { rows: types } = await c.query<{ name: string; oid: number }>(
      `SELECT a.attname::text AS name, a.atttypid::int AS oid FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [info.oid],
    );
    const tableSql = qualified(schema, name);
    const keyList = info.primaryKey.map((k) => `t.${ident(k)}`).join(', ');
    const lastValues = info.primaryKey
      .map((k) => `(jsonb_populate_record(NULL::${tableSql}, $2::jsonb)).${ident(k)}`)
      .join(', ');
    // format('%s') writes a value with its type's output function, as pgoutput does (a cast to text may differ: bool, inet).
    const header = JSON.stringify({ capture, columns: types.map((t) => t.name), types: types.map((t) => t.oid) }).slice(
      0,
      -1,
    );
    const rowsOf = (next: boolean, condition: string) =>
      `SELECT json_build_array(${types.map((t) => `CASE WHEN t.${ident(t.name)} IS NOT NULL THEN format('%s', t.${ident(t.name)}) END`).join(', ')})::text AS row,
              jsonb_build_object(${info.primaryKey.map((k) => `${literal(k)}, t.${ident(k)}`).join(', ')})::text AS key
         FROM ${tableSql} AS t WHERE ${next ? `(${keyList}) > (${lastValues})` : 'true'}${condition} ORDER BY ${keyList} LIMIT $1 FOR SHARE OF t`;
    return {
      async count(where) {
        try {
          return (
            await c.query<{ n: number }>(
              `SELECT count(*)::float8 AS n FROM ${tableSql} AS t WHERE $1::boolean${where === null ? '' : ` AND (${where})`}`,
              [true],
            )
          ).rows[0]!.n;
        } catch (err) {
          throw badWhere(where, `${schema}.${name}`, err);
        }
      },
      async send(lastKey, batch, where) {
        const condition = where === null ? '' : ` AND (${where})`;
        await c.query('BEGIN');
        try {
          const { rows } = await c.query<{ row: string; key: string }>(
            rowsOf(lastKey !== null, condition),
            lastKey === null ? [batch] : [batch, lastKey],
          );
          if (rows.length) {
            await c.query(`SELECT pg_logical_emit_message(true, $1, $2::text)`, [
              BACKFILL_PREFIX,
              `${header},"rows":[${rows.map((r) => r.row).join(',')}]}`,
            ]);
          }
          await c.query('COMMIT');
          return { sent: rows.length, lastKey: rows.length ? rows.at(-1)!.key : lastKey };
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
      },
      close: () => c.end().catch(() => {}),
    };
  } catch (err) {
    await c.end().catch(() => {});
    throw err;
  }
}

/**
 * A MySQL/MariaDB source: each batch, in one InnoDB transaction, locks its rows (LOCK IN SHARE MODE), copies them
 * into the capture's backfill table — created LIKE the captured table, so the binlog carries the rows with the
 * table's own column types — and deletes them again. The binlog reader turns the copy's row events into READ
 * events of the capture, in commit order with the table's changes, converted exactly as its INSERTs are.
 */
async function mysqlBatcher(
  capture: string,
  sourceName: string,
  source: Extract<SourceConfig, { kind: 'mysql' }>,
  database: string,
  name: string,
): Promise<SourceBatcher> {
  const c: mysql.Connection = await connectSource(sourceName, source);
  try {
    const tableSql = `${mysqlIdent(database)}.${mysqlIdent(name)}`;
    const copySql = `${mysqlIdent(database)}.${mysqlIdent(backfillTableName(capture))}`;
    const [keyRows] = (await c.query(
      `SELECT k.COLUMN_NAME AS c, LOWER(col.DATA_TYPE) AS type FROM information_schema.KEY_COLUMN_USAGE k
         JOIN information_schema.COLUMNS col ON col.TABLE_SCHEMA = k.TABLE_SCHEMA AND col.TABLE_NAME = k.TABLE_NAME AND col.COLUMN_NAME = k.COLUMN_NAME
        WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.CONSTRAINT_NAME = 'PRIMARY' ORDER BY k.ORDINAL_POSITION`,
      [database, name],
    )) as [{ c: string; type: string }[], unknown];
    const [exists] = (await c.query(
      `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
      [database, name],
    )) as [unknown[], unknown];
    if (!exists.length)
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: source ${sourceName} has no table ${database}.${name} any more.`,
      );
    const key = keyRows.map((r) => r.c);
    if (!key.length) {
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: ${database}.${name} on source ${sourceName} has no primary key; a backfill goes through the rows in key order to resume where it stopped. Add a primary key.`,
      );
    }
    const binary = keyRows.filter((r) => /binary|blob|bit/.test(r.type)).map((r) => r.c);
    if (binary.length) {
      throw new RowcastError(
        ErrorCodes.CONFLICT,
        `capture ${capture}: the primary key of ${database}.${name} has binary column ${binary.join(', ')}; a backfill records the last key it sent as JSON and cannot resume by it. Give the table a primary key of other types to backfill it.`,
      );
    }
    // Made again for each backfill: the copy has the table's columns as they are now.
    await c.query(`DROP TABLE IF EXISTS ${copySql}`);
    await c.query(`CREATE TABLE ${copySql} LIKE ${tableSql}`);
    await c.query(`ALTER TABLE ${copySql} ENGINE=InnoDB`);
    // Locking reads see the newest committed rows whatever the session's isolation; REPEATABLE READ adds gap locks.
    await c.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    const share = (await isMariadb(c)) ? 'LOCK IN SHARE MODE' : 'FOR SHARE';
    const keyList = key.map((k) => `t.${mysqlIdent(k)}`).join(', ');
    const tuple = (values: unknown[]) => (key.length === 1 ? '?' : `(${values.map(() => '?').join(', ')})`);
    const keyExpr = key.length === 1 ? keyList : `(${keyList})`;
    return {
      async count(where) {
        try {
          const [rows] = (await c.query(
            `SELECT COUNT(*) AS n FROM ${tableSql} AS t${where === null ? '' : ` WHERE (${where})`}`,
          )) as [{ n: string | number }[], unknown];
          return Number(rows[0]!.n);
        } catch (err) {
          throw badWhere(where, `${database}.${name}`, err);
        }
      },
      async send(lastKey, batch, where) {
        const last = lastKey === null ? null : key.map((k) => (JSON.parse(lastKey) as Record<string, unknown>)[k]);
        const after = last === null ? [] : [`${keyExpr} > ${tuple(last)}`];
        const condition = where === null ? [] : [`(${where})`];
        await c.query('BEGIN');
        try {
          // The batch's keys, locked until the commit (with the gaps between them: no row is inserted among them meanwhile).
          const [rows] = (await c.query(
            `SELECT ${keyList} FROM ${tableSql} AS t WHERE ${[...after, ...condition, 'TRUE'].join(' AND ')} ORDER BY ${keyList} LIMIT ? ${share}`,
            [...(last ?? []), batch],
          )) as [Record<string, unknown>[], unknown];
          if (rows.length) {
            const end = key.map((k) => rows.at(-1)![k]);
            const upTo = `${keyExpr} <= ${tuple(end)}`;
            await c.query(
              `INSERT INTO ${copySql} SELECT t.* FROM ${tableSql} AS t WHERE ${[...after, upTo, ...condition].join(' AND ')} ORDER BY ${keyList} ${share}`,
              [...(last ?? []), ...end],
            );
            await c.query(`DELETE FROM ${copySql}`);
          }
          await c.query('COMMIT');
          if (!rows.length) return { sent: 0, lastKey };
          const end = rows.at(-1)!;
          return { sent: rows.length, lastKey: JSON.stringify(Object.fromEntries(key.map((k) => [k, end[k]]))) };
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
      },
      close: () => c.end().catch(() => {}),
    };
  } catch (err) {
    await c.end().catch(() => {});
    throw err;
  }
}

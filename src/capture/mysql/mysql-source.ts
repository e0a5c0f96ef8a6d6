import type mysql from 'mysql2/promise';
import type { MysqlSourceConfig as SourceConfig } from '../../config/source-schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';

/** Where a MySQL source's reader is in the binlog: a GTID position (MariaDB domain-server-seq, MySQL set) and file:pos. */
export interface BinlogPosition {
  gtid?: string;
  file?: string;
  pos?: number;
}

/** The InnoDB table that `lambda_async` writes to, in each captured database; the reader turns its rows into invocations. */
export const OUTBOX_TABLE = 'rowcast_lambda_outbox';

/** A MySQL identifier, always quoted (backticks doubled). */
export const mysqlIdent = (name: string): string => `\`${name.replaceAll('`', '``')}\``;

/** The source's URL (from the environment when the config names a variable); it holds a password and is never logged. */
export function sourceUrl(name: string, source: SourceConfig): string {
  if (typeof source.url === 'string') return source.url;
  const url = process.env[source.url.env];
  if (!url) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `sources.${name}.url: the environment variable ${source.url.env} is not set; set it to mysql://user:password@host:3306.`,
    );
  }
  return url;
}

/** mysql2's connection options for a source: UTC date strings, so that values keep their exact digits. */
export function connectionOptions(name: string, source: SourceConfig): mysql.ConnectionOptions {
  let url: URL;
  try {
    url = new URL(sourceUrl(name, source));
  } catch {
    // The message must not echo the URL: it may hold a password.
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `sources.${name}.url is not a valid URL; write mysql://user:password@host:3306.`,
    );
  }
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: 10_000,
  };
}

export async function connectSource(name: string, source: SourceConfig): Promise<mysql.Connection> {
  try {
    // Imported here: apply plans and validates MySQL sources without a connection, and need not load mysql2.
    const { default: mysql } = await import('mysql2/promise');
    return await mysql.createConnection(connectionOptions(name, source));
  } catch (err) {
    if (err instanceof RowcastError) throw err;
    throw new RowcastError(
      ErrorCodes.CAPTURE_INVALID,
      `sources.${name}: cannot connect to the MySQL server: ${(err as Error).message}`,
      [],
      { cause: err },
    );
  }
}

export const isMariadb = async (c: mysql.Connection): Promise<boolean> =>
  /mariadb/i.test(String(((await c.query('SELECT VERSION() AS v')) as [{ v: string }[], unknown])[0][0]!.v));

/** What reading the binlog needs of the server and of the user rowcast connects as, as problems naming the fix. */
export async function binlogProblems(name: string, c: mysql.Connection): Promise<string[]> {
  const [rows] = (await c.query(
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')`,
  )) as [{ Variable_name: string; Value: string }[], unknown];
  const vars = new Map(rows.map((r) => [r.Variable_name, r.Value]));
  const problems: string[] = [];
  const want = { log_bin: 'ON', binlog_format: 'ROW', binlog_row_image: 'FULL', binlog_row_metadata: 'FULL' } as const;
  for (const [setting, value] of Object.entries(want)) {
    const actual = vars.get(setting);
    if (actual === undefined && setting === 'binlog_row_metadata') continue; // older servers: column metadata is read from INFORMATION_SCHEMA
    if (actual?.toUpperCase() !== value) {
      problems.push(
        `sources.${name}: the server has ${setting} = ${actual ?? '(unset)'}; set ${setting} = ${value} in its config (under [mysqld])${setting === 'log_bin' ? ' and restart it' : ''}.`,
      );
    }
  }
  const [grants] = (await c.query('SHOW GRANTS')) as [Record<string, string>[], unknown];
  const text = grants
    .map((g) => Object.values(g)[0])
    .join('\n')
    .toUpperCase();
  const global = text
    .split('\n')
    .filter((l) => / ON \*\.\* /.test(l))
    .join('\n');
  if (!/ALL PRIVILEGES/.test(global)) {
    const missing = ['REPLICATION SLAVE', 'SELECT'].filter((p) => !global.includes(p));
    // MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR (SHOW BINARY LOGS, SHOW MASTER STATUS).
    if (!global.includes('REPLICATION CLIENT') && !global.includes('BINLOG MONITOR'))
      missing.push('REPLICATION CLIENT');
    if (missing.length)
      problems.push(
        `sources.${name}: the MySQL user lacks ${missing.join(', ')} on *.*; GRANT ${missing.join(', ')} ON *.* TO the user rowcast connects as.`,
      );
  }
  return problems;
}

/** A captured table's columns as the reader converts them, and its primary key (in key order). */
export interface MysqlTableInfo {
  columns: Map<string, { type: string; columnType: string; json: boolean }>;
  key: string[];
}

/** Column types and primary keys of the tables of some databases, keyed "database.table". */
export async function readMysqlTables(c: mysql.Connection, databases: string[]): Promise<Map<string, MysqlTableInfo>> {
  const tables = new Map<string, MysqlTableInfo>();
  if (!databases.length) return tables;
  const [cols] = (await c.query(
    `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS type, COLUMN_TYPE AS columnType
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?) ORDER BY ORDINAL_POSITION`,
    [databases],
  )) as [{ db: string; t: string; c: string; type: string; columnType: string }[], unknown];
  for (const r of cols) {
    const key = `${r.db}.${r.t}`;
    if (!tables.has(key)) tables.set(key, { columns: new Map(), key: [] });
    tables.get(key)!.columns.set(r.c, {
      type: r.type.toLowerCase(),
      columnType: r.columnType.toLowerCase(),
      json: r.type.toLowerCase() === 'json',
    });
  }
  const [keys] = (await c.query(
    `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA IN (?) AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`,
    [databases],
  )) as [{ db: string; t: string; c: string }[], unknown];
  for (const r of keys) tables.get(`${r.db}.${r.t}`)?.key.push(r.c);
  // MariaDB's JSON is LONGTEXT with a json_valid() check of the column's name: its values are parsed as JSON.
  const [checks] = (await c
    .query(
      `SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS t, CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
      WHERE CONSTRAINT_SCHEMA IN (?) AND CHECK_CLAUSE LIKE 'json\\_valid(%'`,
      [databases],
    )
    .catch(() => [[]])) as [{ db: string; t: string; clause: string }[], unknown];
  for (const r of checks) {
    const column = /^json_valid\(`((?:[^`]|``)+)`\)$/.exec(r.clause)?.[1]?.replaceAll('``', '`');
    const info = column === undefined ? undefined : tables.get(`${r.db}.${r.t}`)?.columns.get(column);
    if (info) info.json = true;
  }
  return tables;
}

/** The server's current binlog position: where a source's first capture starts. */
export async function currentPosition(c: mysql.Connection): Promise<BinlogPosition> {
  const [status] = (await c.query('SHOW MASTER STATUS')) as [{ File: string; Position: number }[], unknown];
  const position: BinlogPosition = status[0] ? { file: status[0].File, pos: Number(status[0].Position) } : {};
  if (await isMariadb(c)) {
    const [rows] = (await c.query('SELECT @@GLOBAL.gtid_binlog_pos AS gtid')) as [{ gtid: string }[], unknown];
    position.gtid = rows[0]!.gtid;
  } else {
    const [rows] = (await c
      .query(`SELECT @@GLOBAL.gtid_mode AS mode, @@GLOBAL.gtid_executed AS gtid`)
      .catch(() => [[]])) as [{ mode?: string; gtid?: string }[], unknown];
    if (rows[0]?.mode === 'ON') position.gtid = rows[0].gtid!.replace(/\s+/g, '');
  }
  return position;
}

/**
 * Aurora MySQL's older form, `CALL mysql.lambda_async(arn, input)`: a procedure in the `mysql` database with its own
 * outbox there, installed by `apply` where the user may create them (the reader reads that outbox too).
 */
export function legacyLambdaDdl(): string[] {
  const outbox = `mysql.${mysqlIdent(OUTBOX_TABLE)}`;
  return [
    `CREATE TABLE IF NOT EXISTS ${outbox} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, function_arn VARCHAR(2048) NOT NULL, payload LONGTEXT NOT NULL) ENGINE=InnoDB`,
    `DROP PROCEDURE IF EXISTS mysql.lambda_async`,
    `CREATE PROCEDURE mysql.lambda_async(IN lambda_function_ARN VARCHAR(2048), IN lambda_function_input LONGTEXT) MODIFIES SQL DATA SQL SECURITY DEFINER
     BEGIN
       INSERT INTO ${outbox} (function_arn, payload) VALUES (lambda_function_ARN, COALESCE(lambda_function_input, 'null'));
       DELETE FROM ${outbox} WHERE id = LAST_INSERT_ID();
     END`,
  ];
}

/**
 * What `apply` installs in each captured database: Aurora MySQL's `lambda_async(arn, payload)` as a stored function
 * that writes the call to an InnoDB outbox table and deletes it again in the same transaction. Both row images
 * are in the binlog (so the reader sees the call once its transaction commits, never when it rolls back) and the
 * table stays empty. `lambda_sync` is refused: the function runs after the commit, it cannot answer inside it.
 */
export function lambdaDdl(database: string): string[] {
  const db = mysqlIdent(database);
  const outbox = `${db}.${mysqlIdent(OUTBOX_TABLE)}`;
  return [
    `CREATE TABLE IF NOT EXISTS ${outbox} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, function_arn VARCHAR(2048) NOT NULL, payload LONGTEXT NOT NULL) ENGINE=InnoDB`,
    `DROP FUNCTION IF EXISTS ${db}.lambda_async`,
    // DETERMINISTIC only satisfies the binlog's check for statement-based replication (error 1418 otherwise, unless
    // log_bin_trust_function_creators is on): a ROW binlog logs the rows the function writes, not the call.
    `CREATE FUNCTION ${db}.lambda_async(function_arn VARCHAR(2048), payload LONGTEXT) RETURNS LONGTEXT DETERMINISTIC MODIFIES SQL DATA SQL SECURITY DEFINER
     BEGIN
       INSERT INTO ${outbox} (function_arn, payload) VALUES (function_arn, COALESCE(payload, 'null'));
       DELETE FROM ${outbox} WHERE id = LAST_INSERT_ID();
       RETURN NULL;
     END`,
    `DROP FUNCTION IF EXISTS ${db}.lambda_sync`,
    `CREATE FUNCTION ${db}.lambda_sync(function_arn VARCHAR(2048), payload LONGTEXT) RETURNS LONGTEXT DETERMINISTIC NO SQL SQL SECURITY DEFINER
     BEGIN
       SIGNAL SQLSTATE '0A000' SET MESSAGE_TEXT = 'rowcast: lambda_sync is not supported (functions run after commit); call lambda_async';
       RETURN NULL;
     END`,
  ];
}

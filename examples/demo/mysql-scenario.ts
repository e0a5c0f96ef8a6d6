/**
 * The reference scenario on MySQL/MariaDB, as on Aurora MySQL: the document's table in a MariaDB database and an
 * AFTER INSERT trigger that calls `lambda_async(arn, payload)` with the row as JSON. rowcast reads the database's
 * binlog; `rowcast apply` installs `lambda_async` there (docs/sources.md), so the trigger runs as written for Aurora.
 * Needs MySQL 8 or MariaDB 10.5+ with a ROW binlog (docs/sources.md: Setup); ROWCAST_DEMO_MYSQL_URL names it.
 */
import { randomInt } from 'node:crypto';
import mysql from 'mysql2/promise';
import { redactUrl } from '../../src/observability/redact.js';

export const MYSQL_URL = process.env.ROWCAST_DEMO_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const DATABASE = 'rowcast_demo';
const ARN = 'arn:aws:lambda:us-east-2:123456789100:function:my_rds_triggered_topic_writer';

/** The document's four rows, in MySQL's dialect (STR_TO_DATE for TO_TIMESTAMP). */
export const MYSQL_INSERTS = [
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', STR_TO_DATE('2021-07-14 14:00:00', '%Y-%m-%d %H:%i:%s'))`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Invalid email address', STR_TO_DATE('2021-07-14 14:00:01', '%Y-%m-%d %H:%i:%s'))`,
  `INSERT INTO customer_business_events VALUES ('customer-complaint-app', 'log-customer-complaint', '1001', 'Customer logged a complaint', STR_TO_DATE('2021-07-14 14:14:06', '%Y-%m-%d %H:%i:%s'))`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '2001', 'Missing secondary phone number', NOW())`,
];

// The binlog's row events name their table by its primary key; the document's table has none, so rowcast's
// capture of it (UPDATE/DELETE, as in the PostgreSQL demo) needs one: an INVISIBLE id column (MySQL 8.0.23+,
// MariaDB 10.3+), so the document's INSERTs without a column list run unchanged.
const TABLE = `CREATE TABLE IF NOT EXISTS customer_business_events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY INVISIBLE,
  application VARCHAR(64) NULL,
  category VARCHAR(64) NULL,
  customer_reference_id VARCHAR(8) NULL,
  exception_reason VARCHAR(128) NULL,
  event_timestamp TIMESTAMP NULL
)`;

// Aurora MySQL's trigger form, unchanged but for the ARN's function name (docs/sources.md: lambda_async).
const TRIGGER = `CREATE TRIGGER trigger_insert_event AFTER INSERT ON customer_business_events FOR EACH ROW
BEGIN
  SELECT lambda_async('${ARN}',
    JSON_OBJECT('application', NEW.application, 'category', NEW.category, 'customer_reference_id', NEW.customer_reference_id,
                'exception_reason', NEW.exception_reason, 'event_timestamp', NEW.event_timestamp)) INTO @out;
END`;

/** The MariaDB side of the demo: its database, the trigger (once lambda_async exists) and the inserts. */
export interface MysqlDemoDatabase {
  name: string;
  createTrigger(): Promise<void>;
  insert(statements: string[]): Promise<void>;
  close(): Promise<void>;
}

/** Checks the server, then creates the demo's database and table (kept between runs, as the PostgreSQL demo's). */
export async function prepareMysql(): Promise<MysqlDemoDatabase> {
  let c: mysql.Connection;
  try {
    c = await mysql.createConnection(MYSQL_URL);
  } catch (err) {
    console.error(
      `npm run demo -- --mysql: MySQL/MariaDB is not reachable at ${redactUrl(MYSQL_URL)} (${(err as Error).message}).\n` +
        'Start one (MySQL 8 or MariaDB 10.5+ with its binlog on: docs/sources.md, Setup) or set ROWCAST_DEMO_MYSQL_URL.',
    );
    process.exit(1);
  }
  const [settings] = (await c.query('SELECT @@log_bin AS log_bin, @@binlog_format AS format')) as [
    { log_bin: number; format: string }[],
    unknown,
  ];
  if (!settings[0]!.log_bin || settings[0]!.format !== 'ROW') {
    await c.end();
    console.error(
      `npm run demo -- --mysql: the server at ${redactUrl(MYSQL_URL)} runs with log_bin=${settings[0]!.log_bin}, binlog_format=${settings[0]!.format}; rowcast reads a ROW binlog.\n` +
        'Set log_bin, binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL and server_id under [mysqld] and restart it (docs/sources.md: Setup).',
    );
    process.exit(1);
  }
  await c.query(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`);
  await c.query(`USE ${DATABASE}`);
  await c.query(TABLE);
  return {
    name: DATABASE,
    async createTrigger() {
      const [rows] = (await c.query(`SHOW TRIGGERS WHERE \`Trigger\` = 'trigger_insert_event'`)) as [
        unknown[],
        unknown,
      ];
      if (!rows.length) await c.query(TRIGGER);
      console.log(`MySQL: table ${DATABASE}.customer_business_events with trigger_insert_event calling lambda_async()`);
    },
    async insert(statements) {
      for (const sql of statements) await c.query(sql);
    },
    close: () => c.end(),
  };
}

/** The config's source: the server, read as a replica with a server_id of its own. */
export function mysqlSource() {
  return { maria: { kind: 'mysql' as const, url: MYSQL_URL, serverId: randomInt(100_000, 4_000_000) } };
}

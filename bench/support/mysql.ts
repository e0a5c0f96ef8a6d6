import mysql from 'mysql2/promise';

/** The MariaDB the MySQL-source scenarios read (binlog on, ROW format). */
export const MYSQL_URL = process.env.ROWCAST_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

/** Why a scenario's MySQL side cannot run here, or null. */
export async function mysqlUnavailable(): Promise<string | null> {
  try {
    const c = await mysql.createConnection(MYSQL_URL);
    try {
      const [rows] = (await c.query('SELECT @@log_bin AS on_, @@binlog_format AS format')) as [
        { on_: number; format: string }[],
        unknown,
      ];
      return rows[0]!.on_ && rows[0]!.format === 'ROW'
        ? null
        : 'MariaDB runs without a ROW binary log (docs/sources.md: Setup)';
    } finally {
      await c.end();
    }
  } catch (err) {
    return `MariaDB is not reachable at ${MYSQL_URL}: ${(err as Error).message}`;
  }
}

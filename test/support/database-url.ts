import { randomBytes } from 'node:crypto';

/** The same server and credentials, another database. */
export function databaseUrlFor(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A new test database's name: rowcast_t_<run>_<random>, where <run> is the test runner's id (its cleanup drops only its own). */
export function testDatabaseName(): string {
  return `rowcast_t_${process.env.ROWCAST_TEST_RUN ?? 'x'}_${randomBytes(6).toString('hex')}`;
}

import pg from 'pg';
import { ErrorCodes, RowcastError } from '../errors.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// int8 and numeric stay strings: JavaScript numbers would silently round them.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

export function resolveDatabaseUrl(explicit?: string): string {
  const url = explicit ?? process.env.DATABASE_URL;
  if (!url) {
    throw new RowcastError(
      ErrorCodes.DATABASE_URL_MISSING,
      'No database: set DATABASE_URL (e.g. postgres://user@localhost:5432/app), pass --database-url, or set database.url in the config.',
    );
  }
  // pg reads anything else as a path relative to postgres://base ("not a url" became `getaddrinfo ENOTFOUND base`).
  // The value itself is not repeated: it may hold a password.
  if (!/^(postgres|postgresql):\/\/|^socket:|^\//i.test(url)) {
    throw new RowcastError(
      ErrorCodes.DATABASE_URL_INVALID,
      'The database URL is malformed: it must look like postgres://user:password@host:5432/database (or socket:/run/postgresql?db=app); check DATABASE_URL, --database-url or database.url in the config.',
    );
  }
  return url;
}

/**
 * `queues`: the connections of routing, claims and results, whose statements are prepared (src/store/sql.ts) and
 * so keep one generic plan per connection. A plan made while rowcast's tables were nearly empty would scan them
 * whole once they hold a backlog (routing fell from ~20,000 to ~500 events/s in the benchmark), and nothing
 * replans it until autovacuum analyzes the table; every one of those statements reads its rows by index, so these
 * connections never plan a sequential or bitmap scan of a table that has an index to use.
 */
export function createPool(url: string, options: { max?: number; applicationName?: string; queues?: boolean; asyncCommit?: boolean } = {}): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'rowcast',
    // JIT compiling costs tens of milliseconds per statement; rowcast's statements touch hundreds of rows, not millions.
    // asyncCommit: commits that return before their WAL is flushed, for a caller that checks the flush itself.
    options: ['-c jit=off', options.queues ? '-c enable_seqscan=off -c enable_bitmapscan=off' : '', options.asyncCommit ? '-c synchronous_commit=off' : ''].filter(Boolean).join(' '),
    // A connection PostgreSQL has closed (restart, pg_terminate_backend) is dropped from the pool, not fatal.
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', () => {});
  return pool;
}

const READ_ONLY_SQL_TRANSACTION = '25006';

/** Runs fn in one transaction on one connection; rolls back if it throws. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // The pool's error listener is off while a client is checked out: without this one, a connection PostgreSQL
  // closes mid-transaction (restart, pg_terminate_backend) emits an unhandled 'error' that kills the process.
  // The pending query rejects anyway; the broken connection is then discarded, not returned to the pool.
  let broken: Error | undefined;
  const onError = (err: Error) => void (broken = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (!broken) await client.query('ROLLBACK').catch(() => {});
    // A session that turned out read-only (default_transaction_read_only set on the database, a failover that
    // landed on a standby) stays so for its whole life: drop it, so that the next transaction gets a fresh one.
    if (!broken && (err as { code?: string }).code === READ_ONLY_SQL_TRANSACTION) broken = err as Error;
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

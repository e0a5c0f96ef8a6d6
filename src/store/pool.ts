import type { Socket } from 'node:net';
import pg from 'pg';
import { databaseSchema, type DatabaseSettings } from '../config/database-schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';

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

/** What `database.*` says when the config says nothing: connect within 10 s, keepalive after 5 s, statements 30 s. */
export const DEFAULT_DATABASE_SETTINGS: DatabaseSettings = (({ url: _url, ...settings }) => settings)(
  databaseSchema.parse({}),
);

/** How much longer than statement_timeout the client waits for an answer before it closes the connection. */
const CLIENT_GRACE_MS = 5000;
/** The longest timer Node.js has: the client deadline of the few statements exempt from it. */
const NO_DEADLINE_MS = 2 ** 31 - 1;
const CLIENT_DEADLINE = 'Query read timeout';

/**
 * A statement exempt from the client's deadline (migrations, large promotions); its session must also lift
 * statement_timeout (SET statement_timeout = 0).
 */
export function withoutDeadline(text: string, values?: unknown[]): pg.QueryConfig {
  // query_timeout per query is read by pg's client but missing from its types.
  return { text, values, query_timeout: NO_DEADLINE_MS } as pg.QueryConfig;
}

/** True for the error of a query whose answer did not come within the client's deadline (the connection is closed). */
export function isClientDeadline(err: unknown): boolean {
  return (err as Error | undefined)?.message === CLIENT_DEADLINE;
}

/**
 * pg's client-side query_timeout rejects the query but keeps the connection, whose next queries then queue behind
 * an answer that never comes (a half-open socket after a partition). This client closes its socket instead: it
 * then errors like any lost connection, and whoever holds it drops it.
 */
class DeadlineClient extends pg.Client {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- forwards every overload of pg's query()
  override query(...args: any[]): any {
    const last = args.at(-1);
    if (typeof last === 'function') {
      args[args.length - 1] = (err: Error | undefined, res: unknown) => {
        this.closeIfLate(err);
        last(err, res);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (result instanceof Promise) result.then(undefined, (err: unknown) => this.closeIfLate(err));
    return result;
  }

  private closeIfLate(err: unknown): void {
    if (isClientDeadline(err))
      (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}

/**
 * Every connection (database.*): connecting gives up after `connectTimeout`; TCP keepalive after `keepAlive` idle;
 * statements run at most `statementTimeout` (PostgreSQL's statement_timeout), and the client closes a connection
 * that has not answered a few seconds past that (DeadlineClient).
 *
 * `queues`: the connections of routing, claims and results, whose statements are prepared (src/store/sql.ts) and
 * so keep one generic plan per connection. A plan made while rowcast's tables were nearly empty would scan them
 * whole once they hold a backlog (routing fell from ~20,000 to ~500 events/s in the benchmark), and nothing
 * replans it until autovacuum analyzes the table; every one of those statements reads its rows by index, so these
 * connections never plan a sequential or bitmap scan of a table that has an index to use.
 */
export function createPool(
  url: string,
  options: {
    max?: number;
    applicationName?: string;
    queues?: boolean;
    asyncCommit?: boolean;
    database?: Partial<DatabaseSettings>;
  } = {},
): Pool {
  const pool = new pg.Pool({
    ...connectionSettings(options.database),
    Client: DeadlineClient,
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'rowcast',
    // JIT compiling costs tens of milliseconds per statement; rowcast's statements touch hundreds of rows, not millions.
    // asyncCommit: commits that return before their WAL is flushed, for a caller that checks the flush itself.
    options: [
      '-c jit=off',
      options.queues ? '-c enable_seqscan=off -c enable_bitmapscan=off' : '',
      options.asyncCommit ? '-c synchronous_commit=off' : '',
    ]
      .filter(Boolean)
      .join(' '),
    // A connection PostgreSQL has closed (restart, pg_terminate_backend) is dropped from the pool, not fatal.
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', () => {});
  return pool;
}

/** One connection outside a pool (a LISTEN, a source's lock holder), with the settings of `database.*`. */
export function createClient(url: string, applicationName: string, database?: Partial<DatabaseSettings>): pg.Client {
  return new DeadlineClient({
    ...connectionSettings(database),
    connectionString: url,
    application_name: applicationName,
  });
}

/**
 * Ends a connection, waiting at most `ms` for the server to close its side: pg's end() of an idle client resolves
 * only then, so a server that stalls (stopped, its socket still open) would hold the caller forever. After that the
 * socket is cut.
 */
export async function endClient(client: pg.Client | null, ms: number): Promise<void> {
  if (!client) return;
  const cut = setTimeout(
    () => (client as unknown as { connection: { stream: Socket } }).connection.stream.destroy(),
    ms,
  );
  await client.end().catch(() => {});
  clearTimeout(cut);
}

/** pg settings of a connection under `database.*` (a pg.Client's or a pool's). */
export function connectionSettings(database: Partial<DatabaseSettings> = {}) {
  const { connectTimeout, keepAlive, statementTimeout } = { ...DEFAULT_DATABASE_SETTINGS, ...database };
  return {
    connectionTimeoutMillis: connectTimeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: keepAlive,
    ...(statementTimeout
      ? { statement_timeout: statementTimeout, query_timeout: statementTimeout + CLIENT_GRACE_MS }
      : {}),
  };
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

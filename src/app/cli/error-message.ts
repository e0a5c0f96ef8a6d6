import { ErrorCodes, RowcastError } from '../../model/errors.js';

/** PostgreSQL's answers to a login with a wrong user or password. */
const BAD_CREDENTIALS = new Set(['28000', '28P01']);
/** Reaching the server failed: not running, wrong host or port, wrong database name, starting up. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
  '3D000',
  '57P03',
]);

interface Failure {
  message: string;
  /** 2 for a config the user must fix, 1 for everything else. */
  exitCode: number;
}

/**
 * What the CLI prints when a command fails: one line that names the problem and its fix, for every failure a user
 * can cause (config, database URL, credentials, a port in use); undefined for anything else, which is a bug and
 * printed whole with its stack.
 */
export function describeFailure(err: unknown): Failure | undefined {
  if (err instanceof RowcastError) {
    return {
      message: err.message,
      exitCode: err.code === ErrorCodes.CONFIG_INVALID || err.code === ErrorCodes.CONFIG_NOT_FOUND ? 2 : 1,
    };
  }
  for (
    let e = err as
      | { code?: string; message?: string; address?: string; port?: number; syscall?: string; cause?: unknown }
      | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.syscall === 'listen' && e.code === 'EADDRINUSE') {
      return {
        message: `cannot listen on ${e.address}:${e.port}: the port is in use (another rowcast on that port?); pick another runtime.http.port, or stop what uses it.`,
        exitCode: 1,
      };
    }
    if (e.syscall === 'listen' && e.code === 'EACCES') {
      return {
        message: `cannot listen on ${e.address}:${e.port}: permission denied (ports below 1024 need privileges); pick a runtime.http.port above 1023.`,
        exitCode: 1,
      };
    }
    if (e.code && BAD_CREDENTIALS.has(e.code)) {
      return {
        message: `cannot connect to the database (${e.message}); check the user name and password in DATABASE_URL / --database-url (or database.url in the config).`,
        exitCode: 1,
      };
    }
    if (e.code && UNREACHABLE.has(e.code)) {
      return {
        message: `cannot connect to the database (${e.message}); check DATABASE_URL / --database-url and that PostgreSQL is running.`,
        exitCode: 1,
      };
    }
  }
  return undefined;
}

/** PostgreSQL shutting down, crashed, or starting up: it comes back by itself. */
const RESTARTING = new Set(['57P01', '57P02', '57P03', 'ECONNRESET', 'EPIPE']);

/**
 * A failure of `rowcast start` worth trying again: PostgreSQL went away while it started (restarting, a connection
 * cut). A refused connection counts only after such a failure (the server is mid-restart): refused on the first
 * try, the URL is more likely wrong, and the user hears so at once.
 */
export function isTransientStartFailure(err: unknown, restartSeen: boolean): boolean {
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code && RESTARTING.has(e.code)) return true;
    if (restartSeen && e.code === 'ECONNREFUSED') return true;
    if (/^Connection terminated|^Query read timeout$/.test(e.message ?? '')) return true;
  }
  return false;
}

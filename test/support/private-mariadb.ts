import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { freePort } from '../../src/store/embedded-postgres.js';
import { eventually } from './database.js';

/*
 * A MariaDB server of a test's own: a fresh data directory in the temporary folder and a free port on loopback,
 * with the binlog as rowcast needs it (ROW, FULL images, FULL metadata). For what must not happen to the machine's
 * shared MariaDB: purging its binary logs, shutting it down. Root connects without a password over TCP.
 */

const run = promisify(execFile);
const MARIADBD = process.env.ROWCAST_TEST_MARIADBD ?? '/usr/sbin/mariadbd';
const INSTALL_DB = process.env.ROWCAST_TEST_MARIADB_INSTALL_DB ?? 'mariadb-install-db';

export interface PrivateMariadb {
  /** mysql://root@127.0.0.1:<port> */
  url: string;
  port: number;
  serverId: number;
  /** The server's error log so far (for a failure's message). */
  log(): string;
  /** A clean shutdown, then the same server started again on its data directory and port; how long it was down. */
  restart(): Promise<{ downMs: number }>;
  /** Shuts the server down and removes its data directory. */
  stop(): Promise<void>;
}

/** Why a private MariaDB cannot run here (false: it can). */
export async function privateMariadbUnavailable(): Promise<string | false> {
  try {
    await run(MARIADBD, ['--version']);
    await run('which', [INSTALL_DB]);
    return false;
  } catch {
    return `no ${MARIADBD} or ${INSTALL_DB} on this machine`;
  }
}

/** Initialises a data directory and starts mariadbd on it; resolves once it answers a query. */
export async function startPrivateMariadb(): Promise<PrivateMariadb> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rowcast-mariadb-'));
  const datadir = path.join(dir, 'data');
  const errorLog = path.join(dir, 'error.log');
  const root = process.getuid?.() === 0;
  await run(INSTALL_DB, [
    '--no-defaults',
    `--datadir=${datadir}`,
    ...(root ? ['--user=root'] : []),
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]).catch((err: Error) => {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed: ${err.message}`);
  });
  const port = await freePort();
  const serverId = randomInt(2, 1_000_000);
  const args = [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(dir, 'mariadb.sock')}`,
    `--pid-file=${path.join(dir, 'mariadb.pid')}`,
    ...(root ? ['--user=root'] : []),
    `--log-bin=${path.join(datadir, 'binlog')}`,
    '--binlog-format=ROW',
    '--binlog-row-image=FULL',
    '--binlog-row-metadata=FULL',
    `--server-id=${serverId}`,
    '--skip-name-resolve',
    '--innodb-buffer-pool-size=32M',
    `--log-error=${errorLog}`,
  ];
  const launch = (): ChildProcess => spawn(MARIADBD, args, { stdio: 'ignore' });
  let child = launch();
  const exitOf = (c: ChildProcess) => new Promise<void>((resolve) => c.once('exit', () => resolve()));
  let exited = exitOf(child);
  const log = () => {
    try {
      return readFileSync(errorLog, 'utf8');
    } catch {
      return '';
    }
  };
  const url = `mysql://root@127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM'); // a clean shutdown
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Fails at once if mariadbd exits (a port taken meanwhile, a bad option) rather than at the timeout.
  const accepting = () =>
    Promise.race([
      eventually(
        async () => {
          const c = await mysql.createConnection(url).catch(() => null);
          if (!c) return false;
          await c.end();
          return true;
        },
        `the private MariaDB on port ${port} to accept connections`,
        120_000,
      ),
      exited.then(() => {
        throw new Error(`mariadbd exited (${child.exitCode ?? child.signalCode}): ${log().slice(-2000)}`);
      }),
    ]);
  const restart = async () => {
    const t0 = Date.now();
    child.kill('SIGTERM'); // a clean shutdown, as `mariadb-admin shutdown` does
    await exited;
    child = launch();
    exited = exitOf(child);
    await accepting();
    return { downMs: Date.now() - t0 };
  };
  try {
    await accepting();
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, serverId, log, restart, stop };
}

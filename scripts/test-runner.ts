/**
 * What `npm test` and `npm run test:faults` share: a real PostgreSQL (DATABASE_URL, or an embedded one started
 * here), a migrated template database that each test file clones into its own, node's test runner over the
 * files, and clean-up of every database the run created.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../src/store/migrate.js';
import { createPool } from '../src/store/pool.js';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.js';
import { databaseUrlFor } from '../test/support/database-url.js';

/** The *.test.ts files under dir, recursively, sorted. */
export function findTests(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const file = path.join(dir, name);
      if (statSync(file).isDirectory()) return findTests(file);
      return name.endsWith('.test.ts') ? [file] : [];
    })
    .sort();
}

/** Runs the files with node's test runner against a prepared database; resolves with the runner's exit code. */
export async function runTestFiles(
  files: string[],
  options: { what: string; concurrency: number; env?: Record<string, string> },
): Promise<number> {
  const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
  const adminUrl = process.env.DATABASE_URL ?? embedded!.url;
  const template = `rowcast_test_template_${process.pid}`;
  // Test databases carry this run's id, so that runs sharing one server never drop each other's databases.
  const run = String(process.pid);
  console.log(
    `${options.what} on ${embedded ? 'an embedded PostgreSQL' : 'DATABASE_URL'}; template database ${template}; ${files.length} file(s)`,
  );

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${template}`);
    await admin.query(`CREATE DATABASE ${template}`);
    const pool = createPool(databaseUrlFor(adminUrl, template), { max: 1 });
    await migrate(pool);
    await pool.end();
    return await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--test', `--test-concurrency=${options.concurrency}`, '--test-reporter=spec', ...files],
        {
          stdio: 'inherit',
          env: {
            ...process.env,
            ...options.env,
            ROWCAST_TEST_ADMIN_URL: adminUrl,
            ROWCAST_TEST_TEMPLATE: template,
            ROWCAST_TEST_RUN: run,
          },
        },
      );
      child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    });
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${template}`).catch(() => {});
    // Databases of this run's test files that crashed before cleaning up.
    const leftovers = await admin
      .query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`rowcast_t\\_${run}\\_%`])
      .catch(() => ({ rows: [] }));
    for (const { datname } of leftovers.rows)
      await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
    await admin.end();
    await embedded?.stop();
  }
}

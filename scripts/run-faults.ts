/**
 * npm run test:faults: the fault-injection suite (test/faults/*.test.ts), apart from `npm test`. Prepares an
 * embedded PostgreSQL (or uses DATABASE_URL) and a migrated template database as scripts/run-tests.ts does, runs
 * the scenarios one file at a time (they start rowcast child processes and kill things), and prints every
 * scenario's `FAULT-RESULT {json}` figures again at the end.
 *   npm run test:faults                               every scenario
 *   npm run test:faults -- test/faults/x.test.ts      some
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../src/store/migrate.js';
import { createPool } from '../src/store/pool.js';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.js';
import { databaseUrlFor } from '../test/support/database-url.js';

const dir = 'test/faults';
const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : readdirSync(dir)
      .filter((n) => n.endsWith('.test.ts'))
      .sort()
      .map((n) => path.join(dir, n));
const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const adminUrl = process.env.DATABASE_URL ?? embedded!.url;
const template = `rowcast_test_template_${process.pid}`;
const results = path.join(tmpdir(), `rowcast-fault-results-${process.pid}.jsonl`);
console.log(`fault scenarios on ${embedded ? 'an embedded PostgreSQL' : 'DATABASE_URL'}; template database ${template}; ${files.length} file(s)`);

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS ${template}`);
await admin.query(`CREATE DATABASE ${template}`);
const pool = createPool(databaseUrlFor(adminUrl, template), { max: 1 });
await migrate(pool);
await pool.end();

let code = 1;
const t0 = Date.now();
try {
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
      stdio: 'inherit',
      env: { ...process.env, ROWCAST_TEST_ADMIN_URL: adminUrl, ROWCAST_TEST_TEMPLATE: template, ROWCAST_FAULT_RESULTS: results },
    });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${template}`).catch(() => {});
  const leftovers = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'rowcast_t\\_%'`).catch(() => ({ rows: [] }));
  for (const { datname } of leftovers.rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
  await admin.end();
  await embedded?.stop();
}
console.log(`\nfault suite ${code === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - t0) / 1000)} s; figures:`);
if (existsSync(results)) {
  process.stdout.write(readFileSync(results, 'utf8'));
  rmSync(results, { force: true });
}
process.exit(code);

/**
 * npm run test:faults: the fault-injection suite (test/faults/*.test.ts), apart from `npm test`. Prepares an
 * embedded PostgreSQL (or uses DATABASE_URL) and a migrated template database as scripts/run-tests.ts does, runs
 * the scenarios one file at a time (they start rowcast child processes and kill things), and prints every
 * scenario's `FAULT-RESULT {json}` figures again at the end.
 *   npm run test:faults                               every scenario
 *   npm run test:faults -- test/faults/x.test.ts      some
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findTests, runTestFiles } from './test-runner.js';

const files = process.argv.slice(2).length ? process.argv.slice(2) : findTests('test/faults');
const results = path.join(tmpdir(), `rowcast-fault-results-${process.pid}.jsonl`);
const t0 = Date.now();
const code = await runTestFiles(files, {
  what: 'fault scenarios',
  concurrency: 1,
  env: { ROWCAST_FAULT_RESULTS: results },
});
console.log(`\nfault suite ${code === 0 ? 'passed' : 'FAILED'} in ${Math.round((Date.now() - t0) / 1000)} s; figures:`);
if (existsSync(results)) {
  process.stdout.write(readFileSync(results, 'utf8'));
  rmSync(results, { force: true });
}
process.exit(code);

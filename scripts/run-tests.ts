/**
 * npm test: the unit and end-to-end tests (test/unit, test/e2e) against a real PostgreSQL — DATABASE_URL, or an
 * embedded one — each file in its own database cloned from a migrated template.
 *   npm test                          every test
 *   npm test -- test/unit/x.test.ts   some files
 */
import { findTests, runTestFiles } from './test-runner.js';

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : [...findTests('test/unit'), ...findTests('test/e2e')];
process.exit(await runTestFiles(files, { what: 'tests', concurrency: 3 }));

import { loadavg } from 'node:os';
import pg from 'pg';
import { apply } from '../../src/admin/config/apply.js';
import { dropSlots } from '../../src/capture/logical-ddl.js';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { FunctionConfig } from '../../src/config/function-schema.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { RuntimeConfig } from '../../src/config/runtime-schema.js';
import { type RowcastRuntime, startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { createPool, type Pool } from '../../src/store/pool.js';
import { databaseUrlFor, testDatabaseName } from './database-url.js';
import { patient } from './patience.js';

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool for the test's own queries (writes into user tables, assertions on rowcast.*). */
  pool: Pool;
  drop(): Promise<void>;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run tests with \`npm test\` (scripts/run-tests.ts prepares the database).`);
  return value;
}

/** A fresh database for one test file, cloned from the migrated template (fast, isolated, parallel-safe). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = env('ROWCAST_TEST_ADMIN_URL');
  const name = testDatabaseName();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${env('ROWCAST_TEST_TEMPLATE')}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrlFor(adminUrl, name);
  const pool = createPool(url, { max: 5, applicationName: 'rowcast test', database: { statementTimeout: 0 } });
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await dropSlots(c, { database: name });
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Validates and applies a config (as `rowcast apply` does). */
export async function applyConfig(pool: Pool, input: RowcastConfigInput) {
  const config = parseConfig(input, 'test config');
  await apply(pool, config);
  return config;
}

/**
 * Timings in tens of milliseconds so that retries and lease expiry happen within a test; webhooks go to the loopback
 * receivers of test/support, hence allowPrivateEndpoints.
 */
export const FAST_RUNTIME: Partial<RuntimeConfig> = {
  pollInterval: 200,
  lease: 3000,
  shutdownGrace: 2000,
  logLevel: 'silent',
  allowPrivateEndpoints: true,
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A rowcast process inside the test process. */
export function startTestRowcast(
  url: string,
  runtime: Partial<RuntimeConfig> = {},
  functions?: Record<string, FunctionConfig>,
): Promise<RowcastRuntime> {
  // ROWCAST_TEST_LOG=debug|info|warn shows what the test's runtimes log, to find why a test failed: it wins over
  // the level a test (or FAST_RUNTIME's 'silent') asks for.
  const asked = process.env.ROWCAST_TEST_LOG;
  if (asked !== undefined && !LOG_LEVELS.includes(asked))
    throw new Error(`ROWCAST_TEST_LOG=${asked}: give one of ${LOG_LEVELS.join(', ')}`);
  const logLevel = (asked as RuntimeConfig['logLevel'] | undefined) ?? runtime.logLevel ?? FAST_RUNTIME.logLevel;
  const merged = { ...FAST_RUNTIME, ...runtime, logLevel };
  return startRowcast({ databaseUrl: url, runtime: merged, functions, logger: createLogger(merged.logLevel) });
}

export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Polls until check() returns a truthy value, or fails with `what` after timeoutMs — on an idle machine; on a busy
 * one the deadline stretches by patience() (support/patience.ts).
 */
export async function eventually<T>(check: () => Promise<T> | T, what: string, timeoutMs = 15_000): Promise<Truthy<T>> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
    } catch (err) {
      last = err;
    }
    const waited = Date.now() - started;
    if (waited > patient(timeoutMs))
      throw new Error(
        `timed out after ${waited} ms (${timeoutMs} ms at load ${loadavg()[0]!.toFixed(1)}) waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until a router of this database sleeps (its `sleeping` flag set): writers NOTIFY from then on. */
export function routerAsleep(pool: Pool): Promise<unknown> {
  return eventually(
    async () => (await pool.query('SELECT 1 FROM rowcast.dispatchers WHERE sleeping')).rowCount,
    'the router to sleep',
  );
}

/**
 * Waits until rowcast has nothing left to do: every event routed, no delivery or invocation pending or in flight,
 * no cursor behind its topic.
 * What a test then sees at its receiver is all there will be — the deterministic way to say "nothing more comes"
 * (a delivery is marked done only after its subscriber answered).
 */
export async function settled(pool: Pool, timeoutMs = 15_000): Promise<void> {
  await eventually(
    async () =>
      (
        await pool.query(`SELECT NOT EXISTS (SELECT 1 FROM rowcast.unrouted_events())
                             AND NOT EXISTS (SELECT 1 FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight'))
                             AND NOT EXISTS (SELECT 1 FROM rowcast.invocations WHERE state IN ('pending', 'in_flight'))
                             -- Subscriptions that read through a cursor: what it has not passed (leased or not).
                             AND NOT EXISTS (SELECT 1 FROM rowcast.cursors c, rowcast.cursor_backlog(c.subscription) b
                                              WHERE b.pending + b.in_flight > 0) AS done`)
      ).rows[0].done,
    'rowcast to have nothing left to route, deliver or invoke',
    timeoutMs,
  );
}

/**
 * `n` captured events of `topic`, routed long ago: their writers' xids lie below every snapshot's xmin, so no
 * routing tick sees them as new, and an events table of an installation's size plans as one does (migration 054).
 */
export async function insertRoutedEvents(pool: Pool, n: number, topic: string): Promise<void> {
  await pool.query(
    `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name, written_by, routed_at)
     SELECT $2, $2, 'INSERT', 'public', $2,
            (3 + g::bigint * (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 4) / $1)::text::xid8, now()
       FROM generate_series(1, $1::int) g`,
    [n, topic],
  );
}

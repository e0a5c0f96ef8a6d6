/**
 * The benchmark's PostgreSQL: DATABASE_URL, or an embedded server started here with PostgreSQL's durable defaults
 * (fsync and synchronous_commit on). Every scenario works in a fresh scratch database, migrated, dropped after.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropSlots } from '../../src/capture/logical-ddl.js';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { migrate } from '../../src/store/migrate.js';
import { createPool, type Pool } from '../../src/store/pool.js';

export interface BenchServer {
  adminUrl: string;
  embedded: boolean;
  /** What the run was measured on: version and the settings that decide commit cost. */
  settings: Record<string, string>;
  stop(): Promise<void>;
}

export interface ScratchDatabase {
  name: string;
  url: string;
  /** The load generator's own queries (setup, backlogs, checks). */
  pool: Pool;
  drop(): Promise<void>;
}

/** Settings the figures depend on; recorded with the results. */
const RECORDED = [
  'server_version',
  'fsync',
  'synchronous_commit',
  'wal_sync_method',
  'full_page_writes',
  'shared_buffers',
  'max_connections',
  'wal_level',
];

export async function startBenchServer(log: (line: string) => void): Promise<BenchServer> {
  const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
  const adminUrl = process.env.DATABASE_URL || embedded!.url;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const settings: Record<string, string> = {};
  try {
    for (const name of RECORDED)
      settings[name] = (await admin.query<{ v: string }>(`SELECT current_setting($1) AS v`, [name])).rows[0]!.v;
  } finally {
    await admin.end();
  }
  if (settings.fsync !== 'on' || settings.synchronous_commit !== 'on') {
    log(
      `warning: fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit}; the targets assume durable defaults (both on)`,
    );
  }
  return { adminUrl, embedded: !!embedded, settings, stop: async () => void (await embedded?.stop()) };
}

/** The same server, another database. */
export function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh, migrated database named after the scenario (the name is generated, so safe to splice into SQL). */
export async function createScratchDatabase(
  server: Pick<BenchServer, 'adminUrl'>,
  scenario: string,
  poolSize = 4,
): Promise<ScratchDatabase> {
  const name = `rowcast_bench_${scenario.replace(/[^a-z0-9]/g, '_')}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(server.adminUrl, name);
  const pool = createPool(url, { max: poolSize, applicationName: 'rowcast bench', database: { statementTimeout: 0 } });
  await migrate(pool);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: server.adminUrl });
      await c.connect();
      await dropSlots(c, { database: name }).catch(() => {});
      await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`).catch(() => {});
      await c.end();
    },
  };
}

/**
 * The reference table (the blog's customer_business_events) with a bigint key, so captures carry a key and the
 * receivers can tell which row a request belongs to.
 */
export function referenceTableDdl(table: string): string {
  return `CREATE TABLE ${pg.escapeIdentifier(table)} (
    id bigint PRIMARY KEY,
    application varchar(64),
    category varchar(64),
    customer_reference_id varchar(8),
    exception_reason varchar(128),
    event_timestamp timestamp
  )`;
}

/** INSERT of one reference row with id $1. */
export function insertOneSql(table: string): string {
  return `INSERT INTO ${pg.escapeIdentifier(table)} VALUES ($1, 'customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', now())`;
}

/** INSERT of rows $1..$2 (inclusive) in one statement, set-based. */
export function insertRangeSql(table: string): string {
  return `INSERT INTO ${pg.escapeIdentifier(table)}
    SELECT g, 'customer-onboard-app', 'validate-optional-data', (g % 10000)::text, 'Missing secondary phone number', now()
    FROM generate_series($1::bigint, $2::bigint) AS g`;
}

/** Writes rows first..last set-based in chunks, reporting progress (backlogs of up to a million events). */
export async function fillBacklog(
  pool: Pool,
  table: string,
  first: number,
  last: number,
  onProgress?: (done: number) => void,
): Promise<void> {
  const chunk = 50_000;
  for (let from = first; from <= last; from += chunk) {
    const to = Math.min(last, from + chunk - 1);
    await pool.query(insertRangeSql(table), [from, to]);
    onProgress?.(to - first + 1);
  }
}

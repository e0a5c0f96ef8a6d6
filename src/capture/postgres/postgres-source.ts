import pg from 'pg';
import type { PostgresSourceConfig } from '../../config/source-schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';

/** The slot and publication a PostgreSQL source is read through (apply manages both on the source). */
export function sourceObjects(name: string, source: PostgresSourceConfig): { slot: string; publication: string } {
  const base = `rowcast_${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
  return { slot: source.slot ?? base, publication: source.publication ?? base };
}

/** The source's URL (from the environment when the config names a variable); it holds a password and is never logged. */
export function postgresSourceUrl(name: string, source: PostgresSourceConfig): string {
  if (typeof source.url === 'string') return source.url;
  const url = process.env[source.url.env];
  if (!url) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `sources.${name}.url: the environment variable ${source.url.env} is not set; set it to postgres://user:password@host:5432/database.`,
    );
  }
  return url;
}

/** A connection to the source; a failure names the source, never the URL (it may hold a password). */
export async function connectPostgresSource(
  name: string,
  source: PostgresSourceConfig,
  applicationName = 'rowcast apply',
): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: postgresSourceUrl(name, source),
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new RowcastError(
      ErrorCodes.CAPTURE_INVALID,
      `sources.${name}: cannot connect to the PostgreSQL server: ${(err as Error).message}`,
      [],
      { cause: err },
    );
  }
  return client;
}

/**
 * What logical replication from the source needs of the server and of the role rowcast connects as, as problems
 * naming the fix: wal_level = logical, free slots, REPLICATION, and CREATE on the database for the publication.
 */
export async function postgresSourceProblems(
  name: string,
  c: pg.Client,
  publicationExists: boolean,
): Promise<string[]> {
  const { rows } = await c.query<{
    wal_level: string;
    replication: boolean;
    create: boolean;
    slots: number;
    user: string;
    db: string;
  }>(
    `SELECT current_setting('wal_level') AS wal_level, current_user AS user, current_database() AS db,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication,
            has_database_privilege(current_database(), 'CREATE') AS create,
            current_setting('max_replication_slots')::int AS slots`,
  );
  const s = rows[0]!;
  const problems: string[] = [];
  if (s.wal_level !== 'logical') {
    problems.push(
      `sources.${name}: the server has wal_level = ${s.wal_level}; set wal_level = logical there (postgresql.conf, or ALTER SYSTEM SET wal_level = logical) and restart it.`,
    );
  }
  if (s.slots < 1)
    problems.push(`sources.${name}: the server has max_replication_slots = 0; set it to at least 1 and restart it.`);
  if (!s.replication)
    problems.push(
      `sources.${name}: the role ${s.user} lacks the REPLICATION attribute; run ALTER ROLE ${pg.escapeIdentifier(s.user)} REPLICATION on the source.`,
    );
  if (!publicationExists && !s.create) {
    problems.push(
      `sources.${name}: the role ${s.user} may not create the publication; run GRANT CREATE ON DATABASE ${pg.escapeIdentifier(s.db)} TO ${pg.escapeIdentifier(s.user)} on the source.`,
    );
  }
  return problems;
}

/** A captured table on the source: its columns, primary key (in key order), whether this role owns it, its identity. */
export interface SourceTable {
  columns: string[];
  key: string[];
  owned: boolean;
  fullIdentity: boolean;
}

export async function readSourceTable(c: pg.Client, schema: string, table: string): Promise<SourceTable | null> {
  const { rows } = await c.query<{ columns: string[]; key: string[]; owned: boolean; full: boolean }>(
    `SELECT ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
            ARRAY(SELECT a.attname::text FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord) AS key,
            pg_has_role(c.relowner, 'USAGE') AS owned, c.relreplident = 'f' AS full
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, table],
  );
  const r = rows[0];
  return r ? { columns: r.columns, key: r.key, owned: r.owned, fullIdentity: r.full } : null;
}

import { z } from 'zod';

/** Source names key positions and appear in events. */
export const sourceName = z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, 'use 1–63 letters, digits, "-" or "_"');

const envRef = z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') });

/**
 * A database other than the store whose changes rowcast captures (docs/sources.md). mysql: a MySQL or MariaDB
 * server, read from its binary log (ROW format); its captures' `lambda_async` calls invoke functions.
 */
export const mysqlSourceSchema = z.strictObject({
  kind: z.literal('mysql'),
  /**
   * mysql://user:password@host:3306, or { env: "VARIABLE" } to read it from the environment (keeps the password out
   * of the config); never logged.
   */
  url: z.union([z.string().regex(/^mysql:\/\//, 'a mysql://user:password@host:port URL'), envRef], {
    error:
      'write the URL (mysql://user:password@host:3306) or { env: "VARIABLE" } to read it from an environment variable',
  }),
  /** The replica server_id rowcast reads the binlog as: unique among the server's replicas and binlog readers. */
  serverId: z.number().int().min(1).max(4_294_967_295).default(4_242_424),
});

/** A replication slot's or publication's name on a PostgreSQL source. */
const pgObjectName = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'use 1–63 lower-case letters, digits or "_", not starting with a digit');

/**
 * postgres: another PostgreSQL server (10+), read by logical replication (pgoutput) from a slot and a publication
 * that `rowcast apply` manages there; nothing else of rowcast is written on it.
 */
export const postgresSourceSchema = z.strictObject({
  kind: z.literal('postgres'),
  /** postgres://user:password@host:5432/database, or { env: "VARIABLE" }; never logged. */
  url: z.union([z.string().regex(/^postgres(ql)?:\/\//, 'a postgres://user:password@host:port/database URL'), envRef], {
    error:
      'write the URL (postgres://user:password@host:5432/database) or { env: "VARIABLE" } to read it from an environment variable',
  }),
  /** The replication slot on the source (default rowcast_<source name>): one per store reading the source. */
  slot: pgObjectName.optional(),
  /** The publication on the source (default rowcast_<source name>). */
  publication: pgObjectName.optional(),
});

export const sourceSchema = z.discriminatedUnion('kind', [mysqlSourceSchema, postgresSourceSchema]);

export type SourceConfig = z.output<typeof sourceSchema>;
export type MysqlSourceConfig = z.output<typeof mysqlSourceSchema>;
export type PostgresSourceConfig = z.output<typeof postgresSourceSchema>;

import { z } from 'zod';
import { duration } from './duration.js';

/** `database`: where the store is, and how every connection of rowcast's processes to it behaves. */
export const databaseSchema = z.strictObject({
  url: z.string().min(1).optional(),
  /** Connecting (TCP and PostgreSQL's startup) gives up after this long: an unreachable server is an error, not a hang. */
  connectTimeout: duration.default(10_000),
  /** TCP keepalive probes start after this long idle: a connection to a vanished server breaks instead of idling forever. */
  keepAlive: duration.default(5_000),
  /**
   * A statement of rowcast's processes runs at most this long (PostgreSQL's statement_timeout). A few seconds
   * later the client gives up as well and closes the connection: a half-open socket (a partition) never holds
   * a worker. Migrations and logical capture's promotions of large transactions are exempt. 0: no limit.
   */
  statementTimeout: duration.default(30_000),
});

export type DatabaseSettings = Omit<z.output<typeof databaseSchema>, 'url'>;

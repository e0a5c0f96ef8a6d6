import type { Logger } from '../observability/logger.js';
import type { Pool, PoolClient } from '../store/pool.js';

/**
 * The connection a claim loop claims on, kept for the process's life (claims are one at a time). Its commits are
 * asynchronous (`synchronous_commit = off`): a claim then costs no WAL flush, which is most of a claim's time and
 * sits on every event's path to its subscriber. Safe, because a claim only leases: if PostgreSQL crashes before
 * the claim reaches disk, the row is simply due again with its old attempt count — the work may be done twice,
 * which at-least-once allows. The next claim then hands out the same (id, attempt) again, so results and releases
 * are fenced by the claim's random lease token (leaseFence), not by the attempt: the first owner's result, written
 * after the crash, is refused. Results and publishes stay synchronous (a result's flush flushes its claim too).
 */
const READ_ONLY_SQL_TRANSACTION = '25006';

export class ClaimSession {
  private client: PoolClient | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    /** Called when the connection breaks (anything held by the session, like advisory locks, is gone with it). */
    private readonly onBroken: () => void = () => {},
  ) {}

  async get(): Promise<PoolClient> {
    if (this.client) return this.client;
    const client = await this.pool.connect();
    client.on('error', (err: Error) => {
      if (this.client !== client) return;
      this.log.warn({ err: err.message }, 'the claiming connection broke; opening another');
      this.client = null;
      this.onBroken();
      client.release(err);
    });
    try {
      await client.query('SET synchronous_commit = off');
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    this.client = client;
    return client;
  }

  /**
   * Runs fn on the connection. A session that turned read-only (a failover that landed on a standby,
   * default_transaction_read_only) stays so for its life: it is dropped, and the next run opens another.
   */
  async run<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.get();
    try {
      return await fn(client);
    } catch (err) {
      if ((err as { code?: string }).code === READ_ONLY_SQL_TRANSACTION && this.client === client) {
        this.client = null;
        this.onBroken();
        client.release(err as Error);
      }
      throw err;
    }
  }

  /** The connection if one is open (for work that only makes sense on it, like giving advisory locks back). */
  get current(): PoolClient | null {
    return this.client;
  }

  async close(beforeRelease?: (client: PoolClient) => Promise<unknown>): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (beforeRelease) await beforeRelease(client).catch(() => {});
    client.release();
  }
}

import type { Pool } from '../../store/pool.js';

/**
 * Wakes running processes after an operator action: they hear NOTIFY rowcast_config, reload topics and
 * subscriptions, and claim the work the action queued at once instead of at their next poll.
 */
export async function wakeProcesses(db: Pick<Pool, 'query'>): Promise<void> {
  await db.query(`SELECT pg_notify('rowcast_config', '')`);
}

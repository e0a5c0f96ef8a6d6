import type { Pool } from '../store/pool.js';

/** Functions an operator paused (admin API / library): their invocations stay queued until resumed. */
export async function pausedFunctions(pool: Pool): Promise<Set<string>> {
  const { rows } = await pool.query<{ name: string }>(`SELECT name FROM rowcast.functions WHERE state = 'paused'`);
  return new Set(rows.map((r) => r.name));
}

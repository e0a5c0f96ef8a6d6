import type { Pool } from '../../store/pool.js';
import { type FunctionInfo, getFunction } from '../inspect/declarations.js';
import { wakeProcesses } from './wake-processes.js';

/* Pausing and resuming a function's invocations, in every process at once. */

async function setFunctionState(
  pool: Pool,
  name: string,
  state: 'active' | 'paused',
  reason: string | null,
): Promise<FunctionInfo> {
  const res = await pool.query(
    `UPDATE rowcast.functions SET state = $2, state_reason = $3, state_changed_at = now() WHERE name = $1 AND state IS DISTINCT FROM $2`,
    [name, state, reason],
  );
  if (res.rowCount) await wakeProcesses(pool);
  return getFunction(pool, name);
}

/** Stops running a function's invocations (in every process); they stay queued until it is resumed. */
export function pauseFunction(pool: Pool, name: string, reason = 'paused by an operator'): Promise<FunctionInfo> {
  return setFunctionState(pool, name, 'paused', reason);
}

/** Runs a paused function's invocations again. */
export function resumeFunction(pool: Pool, name: string): Promise<FunctionInfo> {
  return setFunctionState(pool, name, 'active', null);
}

import { ErrorCodes, RowcastError } from '../errors.js';
import type { Pool } from '../store/pool.js';

/**
 * Queues an asynchronous invocation (as Lambda's InvocationType Event), committed at once; returns its id.
 * Inside a transaction of your own, call the SQL function rowcast.invoke(name, payload) instead, so that the
 * invocation commits — or rolls back — with your changes.
 */
export async function invokeFunction(pool: Pool, functionName: string, event: unknown, options: { clientContext?: unknown } = {}): Promise<string> {
  try {
    const { rows } = await pool.query<{ id: string }>(`SELECT rowcast.invoke($1, $2, 'api', $3) AS id`, [
      functionName,
      JSON.stringify(event ?? null),
      options.clientContext === undefined ? null : JSON.stringify(options.clientContext),
    ]);
    return rows[0]!.id;
  } catch (err) {
    const e = err as { code?: string; message: string; hint?: string };
    if (e.code === '42883') throw new RowcastError(ErrorCodes.NOT_FOUND, `${e.message.replace(/^rowcast: /, '')}. ${e.hint ?? ''}`.trim());
    throw err;
  }
}

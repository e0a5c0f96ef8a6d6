import { ErrorCodes, RowcastError } from '../model/errors.js';
import type { Pool } from '../store/pool.js';

/**
 * Queues an asynchronous invocation (as Lambda's InvocationType Event), committed at once; returns its id.
 * Inside a transaction of your own, call the SQL function rowcast.invoke(name, payload) instead, so that the
 * invocation commits — or rolls back — with your changes.
 */
export async function invokeFunction(
  pool: Pool,
  functionName: string,
  event: unknown,
  options: { clientContext?: unknown } = {},
): Promise<string> {
  return queueInvocation(pool, functionName, JSON.stringify(event ?? null), 'api', options.clientContext);
}

/** Queues an invocation of `payload` (JSON text, kept byte for byte), committed at once; returns its id. */
export async function queueInvocation(
  pool: Pool,
  functionName: string,
  payload: string,
  source: string,
  clientContext?: unknown,
): Promise<string> {
  try {
    const { rows } = await pool.query<{ id: string }>(`SELECT rowcast.invoke($1, $2, $3, $4) AS id`, [
      functionName,
      payload,
      source,
      clientContext === undefined || clientContext === null ? null : JSON.stringify(clientContext),
    ]);
    return rows[0]!.id;
  } catch (err) {
    throw notFound(err);
  }
}

import { REQUEST_RESPONSE_SOURCE } from '../store/invocations.js';

export { REQUEST_RESPONSE_SOURCE };

export interface InvocationAnswer {
  state: 'done' | 'failed';
  /** done: the handler's result (JSON text, or null); failed: Lambda's error payload ({errorMessage, errorType, stackTrace}). */
  payload: string | null;
  durationMs: number;
  /** The attempt's error as history records it ("type: message …"), when it failed. */
  error: string | null;
}

/**
 * Runs an invocation of `payload` (JSON text) now and waits for its answer (as Lambda's InvocationType RequestResponse): queued durably
 * like any other (so the function's concurrency and history apply), tried once, and not sent to the on-failure
 * topic — the caller gets the error. A process running the function must be up; resolves null if `signal` aborts
 * the wait first (the invocation still runs).
 */
export async function invokeAndWait(
  pool: Pool,
  functionName: string,
  payload: string,
  options: { clientContext?: unknown; signal?: AbortSignal } = {},
): Promise<{ id: string; answer: InvocationAnswer | null }> {
  const id = await queueInvocation(pool, functionName, payload, REQUEST_RESPONSE_SOURCE, options.clientContext);
  // Polled: the attempt may run in any rowcast process, and its result is a row like any other.
  for (let wait = 5; !options.signal?.aborted; wait = Math.min(wait * 2, 100)) {
    const { rows } = await pool.query<{
      state: string;
      result: string | null;
      duration_ms: number | null;
      last_error: string | null;
    }>(`SELECT state, result, duration_ms, last_error FROM rowcast.invocations WHERE id = $1`, [id]);
    const row = rows[0];
    if (row && (row.state === 'done' || row.state === 'failed'))
      return {
        id,
        answer: {
          state: row.state,
          payload: row.result,
          durationMs: row.duration_ms ?? 0,
          error: row.state === 'failed' ? row.last_error : null,
        },
      };
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return { id, answer: null };
}

/** rowcast.invoke's "no such function" as rowcast's NOT_FOUND error (naming the known functions); other errors as they are. */
function notFound(err: unknown): unknown {
  const e = err as { code?: string; message: string; hint?: string };
  return e.code === '42883'
    ? new RowcastError(ErrorCodes.NOT_FOUND, `${e.message.replace(/^rowcast: /, '')}. ${e.hint ?? ''}`.trim())
    : err;
}

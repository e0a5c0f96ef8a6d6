import type { Pool } from '../../store/pool.js';
import { decodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

/*
 * Function invocations kept by retention: the admin API's pages (listInvocationPage) and the CLI's list
 * (listInvocations, `rowcast invocations`).
 */

export interface InvocationItem {
  id: string;
  function: string;
  source: string;
  state: 'pending' | 'in_flight' | 'done' | 'failed';
  attempts: number;
  eventId: string | null;
  messageId: string | null;
  trace: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
  lastError: string | null;
  result: string | null;
  published: string[];
}

/** Invocations kept by retention, newest first. */
export async function listInvocationPage(
  pool: Pool,
  filter: { function?: string; status?: InvocationItem['state'] } & TimeRange & PageRequest = {},
): Promise<Page<InvocationItem>> {
  const limit = limitOf(filter);
  const after = decodeCursor('invocation', filter.cursor);
  const [afterAt, afterId] = after ? after.split('|') : [null, null];
  const { rows } = await pool.query(
    `SELECT id::text, function, source, state, attempts, event_id::text, message_id::text, trace, created_at,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key, started_at, finished_at, duration_ms,
            last_error, result, coalesce(published::text[], '{}') AS published
       FROM rowcast.invocations i
      WHERE ($1::text IS NULL OR function = $1) AND ($2::text IS NULL OR state = $2)
        AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)
        AND ($5::timestamptz IS NULL OR (created_at, i.id) < ($5, $6::uuid))
      ORDER BY created_at DESC, i.id DESC LIMIT $7`, // i.id: the uuid, as the cursor compares it, not its text alias
    [
      filter.function ?? null,
      filter.status ?? null,
      filter.since ?? null,
      filter.until ?? null,
      afterAt,
      afterId,
      limit + 1,
    ],
  );
  return pageOf(
    rows,
    limit,
    (r): InvocationItem => ({
      id: r.id,
      function: r.function,
      source: r.source,
      state: r.state,
      attempts: r.attempts,
      eventId: r.event_id,
      messageId: r.message_id,
      trace: r.trace,
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      durationMs: r.duration_ms,
      lastError: r.last_error,
      result: r.result,
      published: r.published,
    }),
    (r) => `${r.created_key}|${r.id}`,
    'invocation',
  );
}

export interface InvocationRecord {
  id: string;
  function: string;
  source: string;
  state: 'pending' | 'in_flight' | 'done' | 'failed';
  attempts: number;
  createdAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
  lastError: string | null;
  result: string | null;
  published: string[];
}

/** Invocation history (within the retention window), newest first. */
export async function listInvocations(
  pool: Pool,
  filter: { function?: string; state?: InvocationRecord['state']; limit?: number } = {},
): Promise<InvocationRecord[]> {
  const { rows } = await pool.query(
    `SELECT id::text, function, source, state, attempts, created_at, finished_at, duration_ms, last_error, result, coalesce(published::text[], '{}') AS published
       FROM rowcast.invocations
      WHERE ($1::text IS NULL OR function = $1) AND ($2::text IS NULL OR state = $2)
      ORDER BY created_at DESC LIMIT $3`,
    [filter.function ?? null, filter.state ?? null, filter.limit ?? 50],
  );
  return rows.map((r) => ({
    id: r.id,
    function: r.function,
    source: r.source,
    state: r.state,
    attempts: r.attempts,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms,
    lastError: r.last_error,
    result: r.result,
    published: r.published,
  }));
}

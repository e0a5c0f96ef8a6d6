import { type Pool, withTransaction } from '../store/pool.js';
import { FAN_OUT_RESULT_SQL, FILTER_CANDIDATES_SQL, type FanOutRow, finishFanOut, UNFILTERED_DELIVERIES_SQL } from './fan-out.js';

export interface RouteResult {
  events: number;
  deliveries: number;
  invocations: number;
}

/**
 * Routes a batch of captured events in one transaction: an event for a topic becomes a message and one delivery
 * per subscription of the topic (filter policies permitting); an event for a function becomes an invocation. Each event is
 * routed exactly once even when several processes route at once (SKIP LOCKED hands it to one of them).
 */
const ROUTE_SQL = `
WITH batch AS (
  SELECT id FROM rowcast.events WHERE routed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), ev AS (
  UPDATE rowcast.events e SET routed_at = now() FROM batch WHERE e.id = batch.id
  RETURNING e.*
), body AS (
  SELECT ev.id, ev.topic, ev.function, ev.capture, ev.op, ev.schema_name, ev.table_name, ev.key, ev.trace,
         json_build_object(
           'id', ev.id::text,
           'op', ev.op,
           'source', json_build_object('capture', ev.capture, 'schema', ev.schema_name, 'table', ev.table_name, 'txid', ev.txid::text),
           'key', ev.key,
           'before', ev.before,
           'after', ev.after,
           'changed', ev.changed,
           'captured_at', to_char(ev.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'trace', ev.trace)::text AS text
    FROM ev
), m AS (
  INSERT INTO rowcast.messages (topic, subject, body, attributes, group_key, event_id, trace)
  SELECT b.topic, c.subject, b.text,
         jsonb_build_object('op', b.op, 'schema', b.schema_name, 'table', b.table_name, 'capture', b.capture),
         b.key::text, b.id, b.trace
    FROM body b LEFT JOIN rowcast.captures c ON c.name = b.capture
   WHERE b.topic IS NOT NULL
   ORDER BY b.id
  RETURNING id, topic, attributes, body, content_type, group_key, event_id, seq
), inv AS (
  INSERT INTO rowcast.invocations (function, payload, source, event_id, trace)
  SELECT b.function, b.text, 'capture', b.id, b.trace FROM body b WHERE b.function IS NOT NULL ORDER BY b.id
  RETURNING 1
), d AS (${UNFILTERED_DELIVERIES_SQL}
), c AS (${FILTER_CANDIDATES_SQL})
${FAN_OUT_RESULT_SQL}, (SELECT count(*) FROM ev)::int AS events, (SELECT count(*) FROM inv)::int AS invocations`;

export async function routeEvents(pool: Pool, batchSize: number): Promise<RouteResult> {
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<FanOutRow & { events: number; invocations: number }>(ROUTE_SQL, [batchSize]);
    const row = rows[0]!;
    const deliveries = row.events ? await finishFanOut(client, row) : 0;
    return { events: row.events, deliveries, invocations: row.invocations };
  });
}

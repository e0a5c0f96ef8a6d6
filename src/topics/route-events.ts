import type { Pool } from '../store/pool.js';

export interface RouteResult {
  events: number;
  deliveries: number;
  invocations: number;
}

/**
 * Routes a batch of captured events in one statement, one transaction: an event for a topic becomes a message
 * and one delivery per subscription of the topic; an event for a function becomes an invocation. Each event is
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
), msg AS (
  INSERT INTO rowcast.messages (topic, subject, body, attributes, group_key, event_id, trace)
  SELECT b.topic, c.subject, b.text,
         jsonb_build_object('op', b.op, 'schema', b.schema_name, 'table', b.table_name, 'capture', b.capture),
         b.key::text, b.id, b.trace
    FROM body b LEFT JOIN rowcast.captures c ON c.name = b.capture
   WHERE b.topic IS NOT NULL
   ORDER BY b.id
  RETURNING id, topic
), inv AS (
  INSERT INTO rowcast.invocations (function, payload, source, event_id, trace)
  SELECT b.function, b.text, 'capture', b.id, b.trace FROM body b WHERE b.function IS NOT NULL ORDER BY b.id
  RETURNING 1
), dlv AS (
  INSERT INTO rowcast.deliveries (message_id, subscription)
  SELECT msg.id, s.name FROM msg JOIN rowcast.subscriptions s ON s.topic = msg.topic
  RETURNING 1
)
SELECT (SELECT count(*) FROM ev)::int AS events, (SELECT count(*) FROM dlv)::int AS deliveries, (SELECT count(*) FROM inv)::int AS invocations`;

export async function routeEvents(pool: Pool, batchSize: number): Promise<RouteResult> {
  const { rows } = await pool.query<RouteResult>(ROUTE_SQL, [batchSize]);
  return rows[0]!;
}

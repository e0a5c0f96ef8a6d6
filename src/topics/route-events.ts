import type { Pool } from '../store/pool.js';

export interface RouteResult {
  events: number;
  deliveries: number;
}

/**
 * Turns a batch of captured events into topic messages and fans each message out into one delivery per
 * subscription of its topic — one statement, one transaction, so an event is routed exactly once even when
 * several processes route at the same time (SKIP LOCKED hands each event to one of them).
 */
const ROUTE_SQL = `
WITH batch AS (
  SELECT id FROM rowcast.events WHERE routed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), ev AS (
  UPDATE rowcast.events e SET routed_at = now() FROM batch WHERE e.id = batch.id
  RETURNING e.*
), msg AS (
  INSERT INTO rowcast.messages (topic, subject, body, attributes, group_key, event_id, trace)
  SELECT ev.topic, c.subject,
         json_build_object(
           'id', ev.id::text,
           'op', ev.op,
           'source', json_build_object('capture', ev.capture, 'schema', ev.schema_name, 'table', ev.table_name, 'txid', ev.txid::text),
           'key', ev.key,
           'before', ev.before,
           'after', ev.after,
           'changed', ev.changed,
           'captured_at', to_char(ev.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'trace', ev.trace)::text,
         jsonb_build_object('op', ev.op, 'schema', ev.schema_name, 'table', ev.table_name, 'capture', ev.capture),
         ev.key::text, ev.id, ev.trace
    FROM ev LEFT JOIN rowcast.captures c ON c.name = ev.capture
   ORDER BY ev.id
  RETURNING id, topic
), dlv AS (
  INSERT INTO rowcast.deliveries (message_id, subscription)
  SELECT msg.id, s.name FROM msg JOIN rowcast.subscriptions s ON s.topic = msg.topic
  RETURNING 1
)
SELECT (SELECT count(*) FROM ev)::int AS events, (SELECT count(*) FROM dlv)::int AS deliveries`;

export async function routeEvents(pool: Pool, batchSize: number): Promise<RouteResult> {
  const { rows } = await pool.query<RouteResult>(ROUTE_SQL, [batchSize]);
  return rows[0]!;
}

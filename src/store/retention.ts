import type { Pool } from './pool.js';

const CHUNK = 5000;
const ACTIVITY_RETENTION = '24 hours';

/**
 * Deletes history past its retention window in small chunks, so tables do not bloat and no long lock is held.
 * Routed events (those of a segment with it), fully delivered messages and finished invocations go after
 * `retention`; messages with dead deliveries after `deadRetention`; work still pending or in flight never; a
 * claim-checked body not before the links sent for it expire, by a delivery row or a cursor (so a link never 404s
 * before its documented expiry, whatever `retention` says).
 */
export async function applyRetention(
  pool: Pool,
  retentionMs: number,
  deadRetentionMs: number,
): Promise<{ events: number; messages: number; invocations: number }> {
  let events = 0;
  let messages = 0;
  // A segment (migration 042) goes as a message would, once every cursor of its topic has passed it; its events are
  // its messages, so they stay while it does.
  for (;;) {
    const r = await pool.query(
      `DELETE FROM rowcast.log_segments WHERE (topic, last_seq) IN (
         SELECT g.topic, g.last_seq FROM rowcast.log_segments g
          WHERE g.created_at < now() - $1 * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM rowcast.subscriptions s JOIN rowcast.cursors c ON c.subscription = s.name
                             WHERE s.topic = g.topic AND g.last_seq > rowcast.cursor_position(c.subscription))
          LIMIT ${CHUNK})`,
      [retentionMs],
    );
    if ((r.rowCount ?? 0) < CHUNK) break;
  }
  for (;;) {
    const r = await pool.query(
      `DELETE FROM rowcast.events WHERE id IN (
         SELECT id FROM rowcast.events e WHERE rowcast.event_routed(e) AND captured_at < now() - $1 * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM rowcast.log_segments g WHERE g.events @> e.id AND e.id = ANY (g.event_ids))
          LIMIT ${CHUNK})`,
      [retentionMs],
    );
    events += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < CHUNK) break;
  }
  for (;;) {
    const r = await pool.query(
      `DELETE FROM rowcast.messages WHERE id IN (
         SELECT m.id FROM rowcast.messages m
          WHERE m.created_at < now() - $1 * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM rowcast.deliveries d WHERE d.message_id = m.id
                             AND (d.state IN ('pending', 'in_flight') OR (d.state = 'dead' AND m.created_at >= now() - $2 * interval '1 millisecond')))
            -- A cursor has not passed it yet (migration 030): pending work never expires.
            AND NOT EXISTS (SELECT 1 FROM rowcast.subscriptions s JOIN rowcast.cursors c ON c.subscription = s.name
                             WHERE s.topic = m.topic AND m.seq > rowcast.cursor_position(c.subscription))
            -- A claim-checked body stays while a link sent for it may still be valid: each attempt sent one lasting
            -- the topic's claimCheckTtl, and a delivery's updated_at is at or after its last attempt; a cursor's
            -- links expire by the time its range's completion recorded (migration 031).
            AND NOT EXISTS (SELECT 1 FROM rowcast.topics t
                             WHERE t.name = m.topic AND t.large_messages = 'claim-check' AND octet_length(m.body) > t.max_message_size
                               AND (EXISTS (SELECT 1 FROM rowcast.deliveries d WHERE d.message_id = m.id
                                             AND d.updated_at >= now() - t.claim_check_ttl_ms * interval '1 millisecond')
                                    OR EXISTS (SELECT 1 FROM rowcast.cursor_claim_checks k
                                                WHERE k.topic = m.topic AND k.to_seq >= m.seq AND k.from_seq < m.seq AND k.expires_at > now())))
          LIMIT ${CHUNK})`,
      [retentionMs, deadRetentionMs],
    );
    messages += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < CHUNK) break;
  }
  let invocations = 0;
  for (;;) {
    const r = await pool.query(
      `DELETE FROM rowcast.invocations WHERE id IN (
         SELECT id FROM rowcast.invocations WHERE state IN ('done', 'failed') AND finished_at < now() - $1 * interval '1 millisecond' LIMIT ${CHUNK})`,
      [retentionMs],
    );
    invocations += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < CHUNK) break;
  }
  await pool.query(`DELETE FROM rowcast.dedup WHERE expires_at < now()`);
  // Cursor ranges whose claim-check links have all expired keep no body any more.
  await pool.query(`DELETE FROM rowcast.cursor_claim_checks WHERE expires_at <= now()`);
  // A stretch a cursor passed unconfirmed (migration 037), or a range it sent again (040), explains nothing once its
  // topic keeps no message of it.
  for (const table of ['rowcast.cursor_skips', 'rowcast.cursor_retakes'])
    await pool.query(
      `DELETE FROM ${table} k USING rowcast.subscriptions s
        WHERE s.name = k.subscription
          AND NOT EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = s.topic AND m.seq > k.from_seq AND m.seq <= k.to_seq)
          AND NOT EXISTS (SELECT 1 FROM rowcast.segment_entries(s.topic, k.from_seq, k.to_seq))`,
    );
  // Activity counts (rates and charts) older than a day are past any window the API shows.
  await pool.query(`DELETE FROM rowcast.activity WHERE bucket < now() - interval '${ACTIVITY_RETENTION}'`);
  // A webhook secret rotated out no longer signs after its overlap (the sink checks the expiry); it is not kept either.
  await pool.query(
    `UPDATE rowcast.subscriptions SET previous_secret = NULL, previous_secret_expires_at = NULL WHERE previous_secret_expires_at <= now()`,
  );
  return { events, messages, invocations };
}

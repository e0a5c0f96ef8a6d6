import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { historyEventSql } from '../../model/attempt-log.js';
import { DELIVERY_ORDER } from '../../routing/fan-out.js';
import { type Pool, type PoolClient, withTransaction } from '../../store/pool.js';
import { resolveDelivery, type RowlessDelivery } from '../inspect/deliveries.js';
import { assertSubscription, unconfirmed } from './subscription-actions.js';
import { wakeProcesses } from './wake-processes.js';

/*
 * Sending deliveries again: every dead one (redrive), one dead one (redriveDelivery), one done or dead one
 * (resendDelivery). Each goes back to pending with a fresh attempt budget and a history entry in its attempt log.
 */

/**
 * Puts dead deliveries back to pending with a fresh attempt budget, in chunks (progress after each); optionally
 * only one subscription's, and only those that went dead in [since, until).
 * Returns how many were re-queued.
 */
export async function redrive(
  pool: Pool,
  options: { subscription?: string; since?: Date; until?: Date; onProgress?: (done: number) => void } = {},
): Promise<number> {
  if (options.subscription) await assertSubscription(pool, options.subscription);
  let total = 0;
  // Each chunk re-queues rows that went dead in [since, until); re-queued rows are no longer dead, so chunks advance.
  for (;;) {
    const r = await pool.query(
      `WITH c AS (SELECT id FROM rowcast.deliveries
                   WHERE state = 'dead' AND ($1::text IS NULL OR subscription = $1)
                     AND ($2::timestamptz IS NULL OR updated_at >= $2) AND ($3::timestamptz IS NULL OR updated_at < $3)
                     -- Not to a subscription waiting for SNS's confirmation or unsubscribed (it receives nothing), but
                     -- its handshake messages (topics 'sns:…'), which are how it gets confirmed.
                     AND ((SELECT s.sns_state FROM rowcast.subscriptions s WHERE s.name = rowcast.deliveries.subscription) = 'confirmed'
                          OR (SELECT m.topic FROM rowcast.messages m WHERE m.id = rowcast.deliveries.message_id) LIKE 'sns:%')
                   LIMIT 1000 FOR UPDATE SKIP LOCKED)
       UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), attempt_log = ${historyEventSql('d', 'redriven')}
         FROM c WHERE d.id = c.id`,
      [options.subscription ?? null, options.since ?? null, options.until ?? null],
    );
    total += r.rowCount ?? 0;
    if (!r.rowCount) break;
    options.onProgress?.(total);
  }
  // Wakes running processes (they reload and claim).
  if (total) await wakeProcesses(pool);
  return total;
}

/** Puts one dead delivery back to pending with a fresh attempt budget; 409 (CONFLICT) if it is not dead. */
export async function redriveDelivery(pool: Pool, id: string): Promise<number> {
  const found = await resolveDelivery(pool, id);
  // A cursor's delivery that went dead has a row; one without is pending, in flight or delivered.
  if (found.row === null)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${found.state === 'in_flight' ? 'in flight' : found.state}, not dead: only dead deliveries are redriven.`,
    );
  return redriveRow(pool, found.row);
}

async function redriveRow(pool: Pool, id: string): Promise<number> {
  // A subscription waiting for SNS's confirmation (or unsubscribed) receives nothing but its handshake messages.
  const { rows } = await pool.query<{ state: string; redriven: boolean; subscription: string; sns_state: string }>(
    `WITH x AS (SELECT d.id, d.state, d.subscription, s.sns_state, s.sns_state = 'confirmed' OR m.topic LIKE 'sns:%' AS allowed
                  FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
                 WHERE d.id = $1),
     r AS (UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), attempt_log = ${historyEventSql('d', 'redriven')}
            WHERE id = $1 AND state = 'dead' AND (SELECT allowed FROM x) RETURNING 1)
     SELECT x.state, x.subscription, x.sns_state, EXISTS (SELECT 1 FROM r) AS redriven FROM x`,
    [id],
  );
  if (!rows[0])
    throw new RowcastError(ErrorCodes.NOT_FOUND, `No delivery ${id}: it never existed or retention removed it.`);
  if (!rows[0].redriven && rows[0].state === 'dead') throw unconfirmed(rows[0].subscription, rows[0].sns_state);
  if (!rows[0].redriven)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${rows[0].state}, not dead: only dead deliveries are redriven (replay a capture to send delivered messages again).`,
    );
  await wakeProcesses(pool);
  return 1;
}

/**
 * Sends one delivered (or dead) delivery again to its subscription (Svix's "resend", Hasura's "redeliver"): back to
 * pending with a fresh attempt budget, as the same message (same webhook-id, so receivers that deduplicate see a
 * copy), and a "resent" entry in its attempt log before the new series of attempts. 404 if there is no such
 * delivery, 409 (CONFLICT) while it is still pending or in flight. Wakes running processes.
 */
export async function resendDelivery(pool: Pool, id: string): Promise<number> {
  const found = await resolveDelivery(pool, id);
  if (found.row !== null) await resendRow(pool, found.row);
  else await resendFromCursor(pool, id, found);
  await wakeProcesses(pool);
  return 1;
}

/** Delivered through its cursor, it has no row: it gets one, as delivered, which the resend then sends again. */
async function resendFromCursor(pool: Pool, id: string, found: RowlessDelivery): Promise<void> {
  if (found.state !== 'done')
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${found.state === 'in_flight' ? 'in flight' : found.state}: it is on its way already; resend it once it is done or dead.`,
    );
  await withTransaction(pool, async (client) => {
    // One resend of a message's delivery at a time: a concurrent one that gave it a row first has its row resent
    // (or refused while that row is on its way), rather than a second row made.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('rowcast.resend'), hashtext($1 || '/' || $2))`, [
      found.subscription,
      found.r.message_id,
    ]);
    // A segment's entry (migration 042) gets the message row its delivery row refers to.
    await client.query(`SELECT rowcast.materialize_segment_messages($1, $2::bigint - 1, $2::bigint, ARRAY[$3::uuid])`, [
      found.r.topic,
      found.seq,
      found.r.message_id,
    ]);
    const { rows } = await client.query<{ id: string }>(
      `WITH made AS (
         INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, attempts, created_at)
         SELECT m.id, $1, ${DELIVERY_ORDER}, 'done', 1, m.created_at
           FROM rowcast.messages m LEFT JOIN rowcast.topics t ON t.name = m.topic
          WHERE m.id = $2 AND NOT EXISTS (SELECT 1 FROM rowcast.deliveries d WHERE d.message_id = $2 AND d.subscription = $1)
         RETURNING id)
       SELECT id::text FROM made
        UNION ALL
       SELECT max(d.id)::text FROM rowcast.deliveries d WHERE d.message_id = $2 AND d.subscription = $1 HAVING count(*) > 0`,
      [found.subscription, found.r.message_id],
    );
    if (!rows[0])
      throw new RowcastError(
        ErrorCodes.NOT_FOUND,
        `No delivery ${id}: retention removed its message (messages are kept for runtime.retention).`,
      );
    await resendRow(client, rows[0].id);
  });
}

async function resendRow(client: Pool | PoolClient, id: string): Promise<void> {
  // As for a redrive: a subscription waiting for SNS's confirmation (or unsubscribed) gets only its handshake messages.
  const { rows } = await client.query<{
    state: string;
    resent: boolean;
    allowed: boolean;
    subscription: string;
    sns_state: string;
  }>(
    `WITH x AS (SELECT d.state, d.subscription, s.sns_state, s.sns_state = 'confirmed' OR m.topic LIKE 'sns:%' AS allowed
                  FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
                 WHERE d.id = $1),
     r AS (UPDATE rowcast.deliveries d
              SET state = 'pending', attempts = 0, available_at = now(), delivered_at = NULL, updated_at = now(), attempt_log = ${historyEventSql('d', 'resent')}
            WHERE id = $1 AND state IN ('done', 'dead') AND (SELECT allowed FROM x) RETURNING 1)
     SELECT x.state, x.subscription, x.sns_state, x.allowed, EXISTS (SELECT 1 FROM r) AS resent FROM x`,
    [id],
  );
  if (!rows[0])
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No delivery ${id}: it never existed or retention removed it (finished deliveries are kept for runtime.retention).`,
    );
  if (!rows[0].resent && !rows[0].allowed) throw unconfirmed(rows[0].subscription, rows[0].sns_state);
  // Read as done or dead, but taken meanwhile (another resend, the worker's claim): on its way as well.
  const state = ['done', 'dead'].includes(rows[0].state) ? 'being sent again' : rows[0].state;
  if (!rows[0].resent)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${state === 'in_flight' ? 'in flight' : state}: it is on its way already; resend it once it is done or dead.`,
    );
}

import { ErrorCodes, RowcastError } from '../model/errors.js';
import type { Pool } from '../store/pool.js';
import { historyEventSql } from '../model/attempt-log.js';
import { unconfirmed } from './admin-actions.js';

/**
 * Sends one delivered (or dead) delivery again to its subscription (Svix's "resend", Hasura's "redeliver"): back to
 * pending with a fresh attempt budget, as the same message (same webhook-id, so receivers that deduplicate see a
 * copy), and a "resent" entry in its attempt log before the new series of attempts. 404 if there is no such
 * delivery, 409 (CONFLICT) while it is still pending or in flight. Wakes running processes.
 */
export async function resendDelivery(pool: Pool, id: string): Promise<number> {
  if (!/^\d{1,19}$/.test(id))
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `"${id}" is not a delivery id: delivery ids are whole numbers (the id field of /api/deliveries items).`,
    );
  // As for a redrive: a subscription waiting for SNS's confirmation (or unsubscribed) gets only its handshake messages.
  const { rows } = await pool.query<{ state: string; resent: boolean; subscription: string; sns_state: string }>(
    `WITH x AS (SELECT d.state, d.subscription, s.sns_state, s.sns_state = 'confirmed' OR m.topic LIKE 'sns:%' AS allowed
                  FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
                 WHERE d.id = $1),
     r AS (UPDATE rowcast.deliveries d
              SET state = 'pending', attempts = 0, available_at = now(), delivered_at = NULL, updated_at = now(), attempt_log = ${historyEventSql('d', 'resent')}
            WHERE id = $1 AND state IN ('done', 'dead') AND (SELECT allowed FROM x) RETURNING 1)
     SELECT x.state, x.subscription, x.sns_state, EXISTS (SELECT 1 FROM r) AS resent FROM x`,
    [id],
  );
  if (!rows[0])
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No delivery ${id}: it never existed or retention removed it (finished deliveries are kept for runtime.retention).`,
    );
  if (!rows[0].resent && ['done', 'dead'].includes(rows[0].state))
    throw unconfirmed(rows[0].subscription, rows[0].sns_state);
  if (!rows[0].resent)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Delivery ${id} is ${rows[0].state === 'in_flight' ? 'in flight' : rows[0].state}: it is on its way already; resend it once it is done or dead.`,
    );
  await pool.query(`SELECT pg_notify('rowcast_config', '')`);
  return 1;
}

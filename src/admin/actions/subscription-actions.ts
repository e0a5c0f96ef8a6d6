import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { type Pool, withTransaction } from '../../store/pool.js';
import { setSubscriptionState } from '../../delivery/delivery-store.js';
import { resetEndpointHealth } from '../../delivery/endpoint-health.js';
import { notDeclared } from '../inspect/declarations.js';
import { wakeProcesses } from './wake-processes.js';

/* An operator's actions on one subscription: pause, resume, a test message; and the refusals they share. */

/** Throws NOT_FOUND for a subscription that does not exist, naming those that do. */
export async function assertSubscription(pool: Pool, name: string): Promise<void> {
  const { rowCount } = await pool.query('SELECT 1 FROM rowcast.subscriptions WHERE name = $1', [name]);
  if (!rowCount) {
    const known = (await pool.query<{ name: string }>('SELECT name FROM rowcast.subscriptions ORDER BY name')).rows.map(
      (r) => r.name,
    );
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No subscription "${name}"; known: ${known.join(', ') || 'none (run rowcast apply)'}.`,
    );
  }
}

/** Re-activates a paused or disabled (HTTP 410, disableAfter) subscription with a fresh health; its pending deliveries flow again. */
export async function resumeSubscription(pool: Pool, name: string): Promise<boolean> {
  await assertSubscription(pool, name);
  // Failures before the resume no longer count towards disableAfter.
  await resetEndpointHealth(pool, name);
  return setSubscriptionState(pool, name, 'active', null);
}

/** Stops deliveries to a subscription; they stay pending until it is resumed. */
export async function pauseSubscription(pool: Pool, name: string, reason = 'paused by an operator'): Promise<boolean> {
  await assertSubscription(pool, name);
  return setSubscriptionState(pool, name, 'paused', reason);
}

/**
 * Sends a test message to one subscription only (not to the rest of its topic): a message on its topic with the
 * attribute rowcast-test = "true", delivered like any other (signed, retried, visible in /api/deliveries). It names
 * its recipient, so that the topic's cursors pass it (migration 038): its row delivers it.
 * `message` is sent as is when it is a string (text/plain), as JSON otherwise. Returns the message id.
 */
export async function sendTestMessage(
  pool: Pool,
  subscription: string,
  options: { subject?: string; message?: unknown } = {},
): Promise<string> {
  return withTransaction(pool, async (client) => {
    const sub = (
      await client.query<{ topic: string; fifo: boolean; sns_state: string }>(
        'SELECT s.topic, t.fifo, s.sns_state FROM rowcast.subscriptions s JOIN rowcast.topics t ON t.name = s.topic WHERE s.name = $1',
        [subscription],
      )
    ).rows[0];
    if (!sub) throw await notDeclared(pool, 'subscription', subscription);
    // As SNS, nothing goes to an endpoint that has not confirmed its subscription, or unsubscribed.
    if (sub.sns_state !== 'confirmed') throw unconfirmed(subscription, sub.sns_state);
    const text = typeof options.message === 'string';
    const body = text
      ? (options.message as string)
      : JSON.stringify(options.message ?? { type: 'rowcast.test', subscription, sentAt: new Date().toISOString() });
    const group = sub.fifo ? 'rowcast-test' : null;
    const { rows } = await client.query<{ id: string; seq: string }>(
      `INSERT INTO rowcast.messages (topic, subject, body, content_type, attributes, group_key, recipient)
       VALUES ($1, $2, $3, $4, '{"rowcast-test": "true"}', $5, $6) RETURNING id::text, seq::text`,
      [
        sub.topic,
        options.subject ?? 'rowcast test message',
        body,
        text ? 'text/plain' : 'application/json',
        group,
        subscription,
      ],
    );
    await client.query(
      'INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq) VALUES ($1, $2, $3, $4)',
      [rows[0]!.id, subscription, group, rows[0]!.seq],
    );
    await wakeProcesses(client);
    return rows[0]!.id;
  });
}

/** 409 for an SNS subscription that is not confirmed: it receives nothing but its handshake messages. */
export function unconfirmed(subscription: string, snsState: string): RowcastError {
  return new RowcastError(
    ErrorCodes.CONFLICT,
    `subscription ${subscription} is ${snsState === 'unsubscribed' ? 'unsubscribed (through its UnsubscribeURL)' : "waiting for its endpoint to confirm it (SNS's SubscriptionConfirmation)"}; it receives no messages until confirmed`,
  );
}

import { LOG_END_SQL } from '../../store/log-leases.js';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Pool, PoolClient } from '../../store/pool.js';

/**
 * SNS's subscription handshake for subscriptions with format 'sns'. A subscription that requires confirmation
 * gets a SubscriptionConfirmation (a delivery of its own, retried like any other) and no messages until the
 * token comes back (GET SubscribeURL, or the API's ConfirmSubscription); messages published meanwhile are not
 * delivered to it, as with SNS. Unsubscribing (GET UnsubscribeURL) stops its messages, drops its pending ones and
 * sends an UnsubscribeConfirmation whose SubscribeURL restores the subscription.
 *
 * The handshake's messages are rows of rowcast.messages under a topic name no real topic can have
 * (CONTROL_TOPIC), so topic streams, replays and rates never see them; the token travels in their attributes.
 * The subscription keeps only the token's SHA-256.
 */

export const CONTROL_TOPIC = {
  SubscriptionConfirmation: 'sns:SubscriptionConfirmation',
  UnsubscribeConfirmation: 'sns:UnsubscribeConfirmation',
} as const;

/** The handshake message type a message row stands for, or null for an ordinary message. */
export function controlTypeOf(messageTopic: string): keyof typeof CONTROL_TOPIC | null {
  if (messageTopic === CONTROL_TOPIC.SubscriptionConfirmation) return 'SubscriptionConfirmation';
  if (messageTopic === CONTROL_TOPIC.UnsubscribeConfirmation) return 'UnsubscribeConfirmation';
  return null;
}

/** SNS's tokens are long hex strings; 64 random bytes here. */
const newToken = () => randomBytes(64).toString('hex');
const sha256 = (token: string) => createHash('sha256').update(token).digest();

/**
 * One statement that sets a subscription's handshake state with a new token, drops its pending deliveries, queues
 * the handshake message and wakes the running processes. For `rowcast apply`'s plan (parameter 1 is the secret).
 */
export function handshakeStatement(
  subscription: string,
  type: keyof typeof CONTROL_TOPIC,
): { sql: string; params: unknown[]; token: string } {
  const token = newToken();
  const state = type === 'SubscriptionConfirmation' ? 'pending_confirmation' : 'unsubscribed';
  return {
    token,
    sql: `WITH s AS (
            UPDATE rowcast.subscriptions SET sns_state = $4, sns_token_sha256 = $5, sns_state_changed_at = now()
             WHERE name = $1 AND settings->>'format' = 'sns' RETURNING name),
          dropped AS (DELETE FROM rowcast.deliveries WHERE subscription IN (SELECT name FROM s) AND state = 'pending'),
          m AS (INSERT INTO rowcast.messages (topic, body, content_type, attributes)
                SELECT $3, '', 'text/plain', jsonb_build_object('Token', $2::text) FROM s RETURNING id),
          d AS (INSERT INTO rowcast.deliveries (message_id, subscription) SELECT m.id, s.name FROM m, s RETURNING 1)
          SELECT (SELECT count(*) FROM d)::int AS queued, pg_notify('rowcast_config', '')`,
    params: [subscription, token, CONTROL_TOPIC[type], state, sha256(token)],
  };
}

async function runHandshake(
  db: Pool | PoolClient,
  subscription: string,
  type: keyof typeof CONTROL_TOPIC,
): Promise<void> {
  const { sql, params } = handshakeStatement(subscription, type);
  const { rows } = await db.query<{ queued: number }>(sql, params);
  if (!rows[0]?.queued) {
    const found = (
      await db.query<{ format: string | null }>(
        `SELECT settings->>'format' AS format FROM rowcast.subscriptions WHERE name = $1`,
        [subscription],
      )
    ).rows[0];
    throw new Error(
      found
        ? `subscription ${subscription} has format "${found.format ?? 'envelope'}"; SNS's handshake needs format "sns" (set it, then try again)`
        : `there is no subscription ${subscription}; create it first`,
    );
  }
}

/**
 * Makes a subscription (format 'sns') wait for confirmation: it is sent a SubscriptionConfirmation and receives
 * nothing else until confirmed (confirmSubscription). Called by the SNS API's Subscribe and by `rowcast apply` for
 * subscriptions declared with `confirmation: 'required'`; pass a transaction's client to make it part of it.
 * Calling it again sends a new token (the old one stops working).
 */
export function requireConfirmation(db: Pool | PoolClient, subscription: string): Promise<void> {
  return runHandshake(db, subscription, 'SubscriptionConfirmation');
}

/**
 * Unsubscribes (SNS's Unsubscribe, UnsubscribeURL): no more messages, its pending ones dropped, and an
 * UnsubscribeConfirmation sent; its SubscribeURL (confirmSubscription with the new token) restores it.
 * Returns false if it was already unsubscribed.
 */
export async function unsubscribe(db: Pool | PoolClient, subscription: string): Promise<boolean> {
  const state = (
    await db.query<{ sns_state: string }>('SELECT sns_state FROM rowcast.subscriptions WHERE name = $1', [subscription])
  ).rows[0]?.sns_state;
  if (state === 'unsubscribed') return false;
  await runHandshake(db, subscription, 'UnsubscribeConfirmation');
  return true;
}

/**
 * CTEs that pass the cursors of subscriptions just confirmed (`names`, a query of their names) over what was published
 * until now, unsent, written down as their leases write what they pass while a subscription waits
 * (rowcast.cursor_skips). Leases decide by the state they read, so a message published while it waited that no lease
 * had reached yet (no free slot, no claim in between) would otherwise be sent once it is confirmed; rows never gave it
 * one. Under the cursor's row lock, as leases take it.
 */
export const passUnconfirmedSql = (names: string) => `upto AS (
    SELECT c.subscription, c.leased_to AS from_seq,
           ${LOG_END_SQL} AS to_seq
      FROM rowcast.cursors c WHERE c.subscription IN (${names}) FOR UPDATE OF c),
  skipped AS (INSERT INTO rowcast.cursor_skips (subscription, from_seq, to_seq)
              SELECT u.subscription, u.from_seq, u.to_seq FROM upto u WHERE u.to_seq > u.from_seq),
  passed AS (UPDATE rowcast.cursors c SET leased_to = u.to_seq FROM upto u
              WHERE c.subscription = u.subscription AND u.to_seq > u.from_seq)`;

/** SNS's confirmation tokens expire after 3 days; so do rowcast's (counted from when the handshake message was made). */
export const TOKEN_LIFETIME_DAYS = 3;

export interface ConfirmOptions {
  /** Through the signed ConfirmSubscription (the subscription's ConfirmationWasAuthenticated), not an unsigned SubscribeURL. */
  authenticated?: boolean;
  /** ConfirmSubscription's AuthenticateOnUnsubscribe: the unsigned UnsubscribeURL no longer unsubscribes it. */
  authenticateOnUnsubscribe?: boolean;
}

/**
 * Confirms the subscription of `topic` whose handshake token this is (ConfirmSubscription, SubscribeURL): it
 * receives the messages published from now on. Returns its name, or null if no subscription of the topic has
 * this token or the token expired (TOKEN_LIFETIME_DAYS). Confirming again with the same token is harmless (SNS's
 * SubscribeURL may be visited twice). Only SHA-256 digests are compared, so the comparison's timing says nothing
 * about the token. How it was confirmed is kept in the subscription's sns_attributes (GetSubscriptionAttributes).
 */
export async function confirmSubscription(
  db: Pool | PoolClient,
  topic: string,
  token: string,
  options: ConfirmOptions = {},
): Promise<string | null> {
  if (!token) return null;
  const { rows } = await db.query<{ name: string; changed: boolean }>(
    `WITH s AS (SELECT name, sns_state <> 'confirmed' AS changed FROM rowcast.subscriptions
                 WHERE topic = $1 AND sns_token_sha256 = $2
                   AND (sns_state = 'confirmed' OR sns_state_changed_at > now() - $5 * interval '1 day') FOR UPDATE),
     confirmed AS (
     UPDATE rowcast.subscriptions u SET sns_state = 'confirmed',
            sns_state_changed_at = CASE WHEN s.changed THEN now() ELSE u.sns_state_changed_at END,
            sns_attributes = CASE WHEN s.changed
              THEN u.sns_attributes || jsonb_build_object('ConfirmationWasAuthenticated', $3::text)
                   || CASE WHEN $4 THEN jsonb_build_object('AuthenticateOnUnsubscribe', 'true') ELSE '{}' END
              ELSE u.sns_attributes END
       FROM s WHERE u.name = s.name RETURNING u.name, s.changed),
     ${passUnconfirmedSql('SELECT name FROM confirmed WHERE changed')}
     SELECT name, changed FROM confirmed`,
    [
      topic,
      sha256(token),
      String(options.authenticated ?? false),
      options.authenticateOnUnsubscribe ?? false,
      TOKEN_LIFETIME_DAYS,
    ],
  );
  const row = rows[0];
  if (row?.changed) await db.query(`SELECT pg_notify('rowcast_config', '')`);
  return row?.name ?? null;
}

/** Whether a token that confirmSubscription refused is one of the topic's that expired (to say so). */
export async function tokenExpired(db: Pool | PoolClient, topic: string, token: string): Promise<boolean> {
  if (!token) return false;
  const { rowCount } = await db.query(
    `SELECT 1 FROM rowcast.subscriptions WHERE topic = $1 AND sns_token_sha256 = $2 AND sns_state <> 'confirmed'`,
    [topic, sha256(token)],
  );
  return Boolean(rowCount);
}

/**
 * UnsubscribeURLs carry an HMAC of the subscription's name (key `sns-unsubscribe` in rowcast.keys), so that
 * knowing a subscription's ARN is not enough to unsubscribe it (SNS's ARNs end in a random id; rowcast's in the
 * subscription's name).
 */
export class UnsubscribeLinks {
  private constructor(private readonly key: Buffer) {}

  static async load(pool: Pool): Promise<UnsubscribeLinks> {
    await pool.query(
      `INSERT INTO rowcast.keys (name, secret) VALUES ('sns-unsubscribe', $1) ON CONFLICT (name) DO NOTHING`,
      [randomBytes(32).toString('base64url')],
    );
    const { rows } = await pool.query<{ secret: string }>(
      `SELECT secret FROM rowcast.keys WHERE name = 'sns-unsubscribe'`,
    );
    return new UnsubscribeLinks(Buffer.from(rows[0]!.secret, 'base64url'));
  }

  sign(subscription: string): string {
    return createHmac('sha256', this.key).update(`unsubscribe:${subscription}`).digest('base64url');
  }

  verify(subscription: string, signature: string | undefined): boolean {
    if (!signature) return false;
    const expected = Buffer.from(this.sign(subscription));
    const given = Buffer.from(signature);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  url(publicUrl: string, subscriptionArn: string, subscription: string): string {
    return `${publicUrl}/sns/unsubscribe?SubscriptionArn=${encodeURIComponent(subscriptionArn)}&Signature=${this.sign(subscription)}`;
  }
}

export const subscribeUrl = (publicUrl: string, topicArn: string, token: string): string =>
  `${publicUrl}/sns/confirm?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(topicArn)}&Token=${token}`;

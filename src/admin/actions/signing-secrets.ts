import { parseDuration } from '../../config/duration.js';
import { WEBHOOK_SECRET } from '../../config/subscription-schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { type Pool, withTransaction } from '../../store/pool.js';
import {
  DEFAULT_SECRET_ROTATION_OVERLAP,
  generateSecret,
  MAX_SECRET_ROTATION_OVERLAP,
  ROTATE_SECRET_SQL,
} from '../../delivery/sinks/http/webhook-secret.js';
import { assertSubscription } from './subscription-actions.js';
import { wakeProcesses } from './wake-processes.js';

/* Webhook signing secrets: reading them (for receivers to verify) and rotating one outside the config. */

/**
 * Signing secrets, for receivers to verify webhook-signature (the secrets rowcast generated included), and until
 * when a rotated-out previous secret still signs too (null: none).
 */
export async function getSubscriptionSecrets(
  pool: Pool,
): Promise<{ name: string; secret: string | null; previousSecretExpiresAt: Date | null }[]> {
  return (
    await pool.query(
      `SELECT name, secret, CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS "previousSecretExpiresAt"
         FROM rowcast.subscriptions ORDER BY name`,
    )
  ).rows;
}

export interface RotatedSecret {
  /** The new signing secret: shown once; receivers verify with it from now on. */
  secret: string;
  /** Until when requests also carry a signature with the previous secret; null: the previous one ended now. */
  previousSecretExpiresAt: Date | null;
}

/**
 * Rotates a webhook subscription's signing secret. The current secret stays valid for `overlap` (milliseconds
 * or a duration such as "24h"; default 24h; 0 ends it at once, e.g. after a leak; at most 30 days): meanwhile
 * every request carries two signatures, so receivers holding either secret accept it. `secret` defaults to a
 * freshly generated one. Running processes pick it up at once (NOTIFY rowcast_config). Refused for a secret the
 * config declares, since the next `rowcast apply` would undo it: change the config instead.
 */
export async function rotateSecret(
  pool: Pool,
  subscription: string,
  options: { overlap?: number | string; secret?: string } = {},
): Promise<RotatedSecret> {
  const given = options.overlap ?? DEFAULT_SECRET_ROTATION_OVERLAP;
  const overlap = typeof given === 'string' && given.trim() === '0' ? 0 : parseDuration(given);
  if (overlap === undefined || overlap > MAX_SECRET_ROTATION_OVERLAP) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `overlap ${JSON.stringify(options.overlap)} is not a duration of at most 30 days; write e.g. "24h", "7d", or 0 to end the previous secret now.`,
    );
  }
  const secret = options.secret ?? generateSecret();
  if (!WEBHOOK_SECRET.test(secret)) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      'the new secret is not a Standard Webhooks secret ("whsec_" + base64 of 24–64 random bytes); omit it and rowcast generates one.',
    );
  }
  await assertSubscription(pool, subscription);
  const expiresAt = await withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ protocol: string; secret_from_config: boolean }>(
      'SELECT protocol, secret_from_config FROM rowcast.subscriptions WHERE name = $1 FOR UPDATE',
      [subscription],
    );
    const row = rows[0];
    if (!row) throw new RowcastError(ErrorCodes.NOT_FOUND, `No subscription "${subscription}" (it was just removed).`);
    if (row.protocol !== 'http' && row.protocol !== 'https') {
      throw new RowcastError(
        ErrorCodes.CONFIG_INVALID,
        `subscription ${subscription} delivers over ${row.protocol}; only webhook (http/https) subscriptions have a signing secret.`,
      );
    }
    if (row.secret_from_config) {
      throw new RowcastError(
        ErrorCodes.CONFIG_INVALID,
        `subscription ${subscription}'s secret is declared in the config (subscriptions.${subscription}.secret), so the next apply would undo a rotation here: change the secret there and run rowcast apply, which keeps the old one valid for secretRotationOverlap.`,
      );
    }
    const updated = await client.query<{ previous_secret_expires_at: Date | null }>(ROTATE_SECRET_SQL, [
      subscription,
      secret,
      overlap,
    ]);
    await wakeProcesses(client);
    return updated.rows[0]!.previous_secret_expires_at;
  });
  return { secret, previousSecretExpiresAt: expiresAt };
}

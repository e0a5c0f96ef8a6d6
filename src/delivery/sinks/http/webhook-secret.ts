import { randomBytes } from 'node:crypto';

export {
  DEFAULT_SECRET_ROTATION_OVERLAP,
  MAX_SECRET_ROTATION_OVERLAP,
} from '../../../config/sink-settings/webhook-settings.js';

/** A Standard Webhooks secret: "whsec_" + base64 of 24 random bytes. */
export function generateSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * Makes $2 the current secret of subscription $1 and keeps the current one valid for $3 milliseconds (0: not at
 * all, e.g. after a leak). Rotating again within an overlap ends the older secret at once: there are at most two.
 * Rotating to the secret already current changes nothing. Returns the previous secret's expiry (null: none).
 * Used by `rowcast apply` (a changed secret in the config) and by rotateSecret() (CLI, admin API).
 */
export const ROTATE_SECRET_SQL = `
  UPDATE rowcast.subscriptions s SET
    previous_secret = CASE WHEN s.secret = $2 THEN s.previous_secret WHEN $3::bigint > 0 AND s.secret IS NOT NULL THEN s.secret END,
    previous_secret_expires_at = CASE WHEN s.secret = $2 THEN s.previous_secret_expires_at
                                      WHEN $3::bigint > 0 AND s.secret IS NOT NULL THEN now() + $3::bigint * interval '1 millisecond' END,
    secret_rotated_at = CASE WHEN s.secret = $2 THEN s.secret_rotated_at ELSE now() END,
    secret = $2,
    updated_at = now()
  WHERE s.name = $1
  RETURNING s.previous_secret_expires_at`;

/**
 * How long a webhook's previous signing secret stays valid after a rotation, unless told otherwise. Svix keeps
 * the old secret valid for 24 hours after a rotation; Stripe lets the old one live for up to 7 days.
 */
export const DEFAULT_SECRET_ROTATION_OVERLAP = 24 * 3_600_000;
/** Longest overlap accepted: two secrets in use for longer than a month is a rotation that was never finished. */
export const MAX_SECRET_ROTATION_OVERLAP = 30 * 24 * 3_600_000;

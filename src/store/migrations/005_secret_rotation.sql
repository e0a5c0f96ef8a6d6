-- Webhook secret rotation (Standard Webhooks allows several signatures in one webhook-signature header): after a
-- rotation the previous secret stays valid until previous_secret_expires_at, and every request carries a signature
-- with each valid secret, so receivers can switch secrets at their own pace.
ALTER TABLE rowcast.subscriptions
  ADD COLUMN previous_secret text,
  ADD COLUMN previous_secret_expires_at timestamptz,
  ADD COLUMN secret_rotated_at timestamptz,
  -- The config declares this secret (subscriptions.<name>.secret): rotate it there, or the next apply would undo
  -- a rotation made by `rowcast rotate-secret`.
  ADD COLUMN secret_from_config boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT subscriptions_previous_secret_expiry CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));

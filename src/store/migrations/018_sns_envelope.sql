-- SNS's HTTP envelope (subscription format 'sns', src/aws/sns-envelope/): the RSA keys that sign envelopes, with
-- their self-signed certificates, which rowcast serves at /SimpleNotificationService-<cert_id>.pem. The newest
-- key signs; older ones stay (and stay served) so messages signed before a rotation still verify.
CREATE TABLE rowcast.sns_signing_keys (
  -- 32 hex characters, the name of the certificate's URL (as SNS's own).
  cert_id     text PRIMARY KEY CHECK (cert_id ~ '^[0-9a-f]{32}$'),
  -- PKCS#8 PEM; never logged, never served.
  private_key text NOT NULL,
  certificate text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- SignatureVersion of a topic's envelopes: 1 (SHA1withRSA, SNS's default) or 2 (SHA256withRSA).
ALTER TABLE rowcast.topics ADD COLUMN signature_version smallint NOT NULL DEFAULT 1 CHECK (signature_version IN (1, 2));

-- SNS's subscription handshake. pending_confirmation: a SubscriptionConfirmation was sent and the subscription
-- gets no messages until its token comes back; unsubscribed: through its UnsubscribeURL (or the API), it gets no
-- more. Subscriptions without the handshake are 'confirmed' from the start. Only the token's SHA-256 is kept here.
ALTER TABLE rowcast.subscriptions
  ADD COLUMN sns_state text NOT NULL DEFAULT 'confirmed' CHECK (sns_state IN ('pending_confirmation', 'confirmed', 'unsubscribed')),
  ADD COLUMN sns_token_sha256 bytea,
  ADD COLUMN sns_state_changed_at timestamptz;

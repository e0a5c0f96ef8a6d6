-- The SNS API (src/aws/sns-api/) makes topics and subscriptions too. owner says who made a row: `rowcast apply`
-- removes only what the config made ('config'); what the API made ('api') is removed through the API (DeleteTopic,
-- Unsubscribe). A config that declares an API-made name takes it over (owner becomes 'config').
ALTER TABLE rowcast.topics
  ADD COLUMN owner text NOT NULL DEFAULT 'config' CHECK (owner IN ('config', 'api')),
  -- SNS topic attributes kept for the API (DisplayName, Policy, SignatureVersion, ContentBasedDeduplication, …).
  ADD COLUMN sns_attributes jsonb NOT NULL DEFAULT '{}';

ALTER TABLE rowcast.subscriptions
  ADD COLUMN owner text NOT NULL DEFAULT 'config' CHECK (owner IN ('config', 'api')),
  -- SNS subscription attributes kept for the API (RawMessageDelivery, RedrivePolicy, the endpoint as given, …).
  ADD COLUMN sns_attributes jsonb NOT NULL DEFAULT '{}';

-- Publish with MessageStructure 'json': the message per protocol ({"http": "…", "email": "…"}); body holds the
-- "default" one. A delivery's claim picks its subscription's protocol's message, else the body.
-- attribute_types: the SNS data type of each message attribute published through the API ({"n": "Number"}), for
-- SNS's envelope; attributes keep the values (String.Array as a JSON list, which filter policies match as SNS does).
ALTER TABLE rowcast.messages
  ADD COLUMN protocol_bodies jsonb,
  ADD COLUMN attribute_types jsonb;

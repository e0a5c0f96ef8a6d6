-- Filter policies (SNS syntax) and dead-letter topics per subscription; a count of messages nobody matched;
-- FIFO topics: per-group order and deduplication.

ALTER TABLE rowcast.subscriptions
  ADD COLUMN filter_policy jsonb,
  ADD COLUMN filter_scope text NOT NULL DEFAULT 'MessageAttributes' CHECK (filter_scope IN ('MessageAttributes', 'MessageBody')),
  ADD COLUMN dead_letter_topic text;

ALTER TABLE rowcast.topics
  ADD COLUMN unmatched_messages bigint NOT NULL DEFAULT 0,
  ADD COLUMN fifo boolean NOT NULL DEFAULT false,
  -- FIFO: a message whose dedup key was seen within this window is dropped (SNS: 5 minutes)
  ADD COLUMN dedup_window_ms integer NOT NULL DEFAULT 300000;

-- The order of messages: a capture's event id (commit order per row), else publish order.
ALTER TABLE rowcast.messages
  ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
  ADD COLUMN dedup_key text;

-- FIFO deliveries: only the first undelivered delivery of a (subscription, group) may be claimed.
ALTER TABLE rowcast.deliveries
  ADD COLUMN group_key text,
  ADD COLUMN seq bigint;
CREATE INDEX deliveries_fifo ON rowcast.deliveries (subscription, group_key, seq) WHERE state IN ('pending', 'in_flight') AND group_key IS NOT NULL;

CREATE TABLE rowcast.dedup (
  topic      text NOT NULL,
  dedup_key  text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (topic, dedup_key)
);

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
  ADD COLUMN dedup_window_ms integer NOT NULL DEFAULT 300000,
  -- FIFO: whether a dead delivery keeps holding back the rest of its group (until redriven)
  ADD COLUMN fifo_dead_blocks boolean NOT NULL DEFAULT false;

-- The order of messages: a capture's event id (commit order per row), else publish order. seq is also the
-- cursor of live streams (src/control-plane/http/topic-stream.ts says how they never skip a lower seq that
-- commits later); they rely on the sequence's default CACHE 1.
ALTER TABLE rowcast.messages
  ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
  ADD COLUMN dedup_key text;
CREATE INDEX messages_topic_seq ON rowcast.messages (topic, seq);

-- Large messages: over max_message_size a topic either refuses the publish or delivers a signed, expiring link
-- to the stored body (claim check).
ALTER TABLE rowcast.topics
  ADD COLUMN max_message_size integer NOT NULL DEFAULT 262144,
  ADD COLUMN large_messages text NOT NULL DEFAULT 'reject' CHECK (large_messages IN ('reject', 'claim-check')),
  ADD COLUMN claim_check_ttl_ms bigint NOT NULL DEFAULT 86400000;

-- Keys of this installation (e.g. for signing claim-check links), shared by all its processes.
CREATE TABLE rowcast.keys (
  name       text PRIMARY KEY,
  secret     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

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

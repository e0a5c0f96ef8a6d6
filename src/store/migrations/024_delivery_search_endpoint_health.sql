-- Find a row's deliveries (issue 15): a captured message's group_key is its row's key (the event's primary-key
-- values as jsonb text), so deliveries are found by row through this index, then deliveries_message. Hash, not
-- btree: a table without a primary key has the whole row as its key, which may exceed a btree entry's limit.
CREATE INDEX messages_group_key ON rowcast.messages USING hash (group_key) WHERE group_key IS NOT NULL;

-- Endpoint health, for a subscription's disablePolicy: since when its attempts fail without a success in between,
-- and how many of its deliveries went dead in a row. A success resets both; so does `rowcast resume`.
ALTER TABLE rowcast.subscriptions
  ADD COLUMN failing_since timestamptz,
  ADD COLUMN dead_in_row integer NOT NULL DEFAULT 0;

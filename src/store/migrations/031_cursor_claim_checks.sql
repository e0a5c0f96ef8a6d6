-- Cursors on claim-check topics (issue 20). A delivery row keeps a claim-checked body while a link it sent may be
-- valid (its updated_at is at or after its last attempt); a cursor has no row per message, so a range that held
-- claim-checked messages leaves one row here, written by the statement that completes it (also when its lease was
-- lost: the links were sent all the same). Every link of the range was signed before that statement began, by
-- this owner or by one whose lease expired before the takeover, so each expires by `now() + claimCheckTtl` of the
-- completion. Retention keeps a claim-checked body while an unexpired row here covers its seq, and deletes the
-- rows once they expire. Ranges without claim-checked messages write nothing more than before.
-- docs/architecture.md ("Cursors") argues the choice.
CREATE TABLE rowcast.cursor_claim_checks (
  topic      text        NOT NULL,
  -- The range (from_seq, to_seq] of the topic's messages, as leased.
  from_seq   bigint      NOT NULL,
  to_seq     bigint      NOT NULL,
  expires_at timestamptz NOT NULL
);

-- Retention looks up the ranges that cover a message: by topic, from its seq up.
CREATE INDEX cursor_claim_checks_topic ON rowcast.cursor_claim_checks (topic, to_seq);

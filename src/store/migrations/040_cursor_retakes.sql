-- A range taken over after its lease expired is sent again, each message marked with the range's attempt number
-- (`rowcast-attempt: 2`); until now nothing of that outlived the range's completion, and the delivery detail and
-- list said `attempts: 1` for every message a cursor passed. cursor_retakes holds each completed range whose attempt
-- was past the first, written by the statement that completes it (delivery/cursor-store.ts); ranges completed at
-- their first attempt, nearly all, write nothing more. Retention deletes a range once its topic keeps no message of
-- it, as it does a cursor's skipped stretches.

CREATE TABLE rowcast.cursor_retakes (
  subscription text    NOT NULL REFERENCES rowcast.cursors (subscription) ON DELETE CASCADE,
  from_seq     bigint  NOT NULL,
  to_seq       bigint  NOT NULL,
  attempts     integer NOT NULL,
  PRIMARY KEY (subscription, from_seq)
);

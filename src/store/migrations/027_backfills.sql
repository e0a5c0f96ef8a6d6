-- Backfills (issue 19 §4): the rows a captured table holds now, sent as events with op READ, batch by batch in
-- primary-key order. One row per capture: where the last batch ended (its last primary key), so that a backfill
-- interrupted by a crash resumes after it. Updated in the same transaction as the batch's events (or, for
-- logical captures, as the batch's WAL message that the reader turns into events), so a batch is sent once.
CREATE TABLE rowcast.backfills (
  capture     text PRIMARY KEY REFERENCES rowcast.captures (name) ON DELETE CASCADE,
  -- The SQL condition the rows were chosen by (--where), NULL for all rows.
  where_sql   text,
  batch       integer NOT NULL CHECK (batch > 0),
  state       text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  -- The primary key of the last row sent, as jsonb (to_jsonb of the row's key columns); NULL before the first batch.
  last_key    jsonb,
  rows_sent   bigint NOT NULL DEFAULT 0,
  -- Rows matching at the start (an estimate of the work: rows inserted meanwhile are sent too).
  rows_total  bigint,
  error       text,
  started_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

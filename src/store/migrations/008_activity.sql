-- Activity across processes (issue 7): the rates and charts of the admin API and the dashboard.
-- Each process counts in memory per 10-second bucket and adds its counts here every few seconds with one upsert
-- (never a write per delivery); reads sum the rows of every process. Retention deletes buckets older than a day.
--   kind 'subscription': count = deliveries acknowledged, errors = failed attempts (retried or dead),
--                        latency = histogram of commit → acknowledgement, in ms, by the fixed bounds of
--                        src/observability/activity.ts (fixed, so that the histograms of all processes add up)
--   kind 'function':     count = invocation attempts, errors = failed attempts
--   kind 'router':       count = events routed (name '')
CREATE TABLE rowcast.activity (
  bucket timestamptz NOT NULL,
  kind text NOT NULL CHECK (kind IN ('subscription', 'function', 'router')),
  name text NOT NULL,
  count bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  latency bigint[],
  PRIMARY KEY (bucket, kind, name)
);

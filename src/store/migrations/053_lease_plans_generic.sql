-- Issue 20: the lease's statement that returns a range's messages and segment entries (RETURN QUERY, migration 046)
-- was planned anew at every call once the log held some tens of thousands of messages (pg_stat_statements with
-- track_planning: 3,001 plans in 3,000 calls, 0.55 ms each, on a log of 30,000). PostgreSQL keeps a statement's
-- generic plan only while its estimate is no dearer than the custom plans': a generic plan estimates a range
-- (seq > $f AND seq <= $t) at a fixed share of the table, which grows with the log, while a custom plan sees the
-- range's few seqs. So the bigger the log, the surer every lease planned it again, and the lease cost 3x as much.
-- The generic plan reads by the same indexes (messages_topic_seq, log_segments_pkey); the lease's other statements
-- already ran on theirs. The function's statements now always keep the plan made for the session.
ALTER FUNCTION rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[], bigint)
  SET plan_cache_mode = force_generic_plan;

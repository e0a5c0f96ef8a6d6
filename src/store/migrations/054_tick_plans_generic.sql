-- Issue 20: the routing tick's statements keep the plans the session made for them, as the lease's do (migration
-- 053). committed_since's statement was planned anew at every routing pass once the events table held some tens of
-- thousands of analyzed rows (pg_stat_statements with track_planning: 4,501 plans in 4,500 calls, 0.19 ms each, on
-- 50,000 events): a generic plan estimates `written_by >= $1` at a share of the table, which grows with it, while a
-- custom plan sees the few writers past the tick. An installation's events table is that size and more. The generic
-- plans read by the same indexes (events_written_by, events_pkey); the functions already turn off the scans they
-- must not use.
ALTER FUNCTION rowcast.committed_since(pg_snapshot, bigint) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION rowcast.tick_events(pg_snapshot, pg_snapshot, bigint, bigint, int) SET plan_cache_mode = force_generic_plan;

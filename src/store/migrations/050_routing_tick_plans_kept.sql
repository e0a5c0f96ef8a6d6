-- Issue 20: an SQL function that cannot be inlined (these two cannot: they SET planner options) is planned anew at
-- every call; PostgreSQL keeps its plans only for the statement that calls it. On an idle chain every routing
-- statement starts a tick, so each one planned committed_since (about 0.18 ms) and tick_events (0.03 ms): a sixth
-- of a one-event routing statement's time. As PL/pgSQL their statements' plans are kept by the session, as the lease
-- function's are. The statements are those of migrations 033 and 034, unchanged.
CREATE OR REPLACE FUNCTION rowcast.committed_since(tick pg_snapshot, hi bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off SET max_parallel_workers_per_gather = 0 AS $$
BEGIN
  RETURN least(
    -- Running at the tick, committed since.
    (SELECT min(e.id + 0) FROM rowcast.events e
      WHERE e.written_by = ANY (ARRAY(SELECT x FROM pg_snapshot_xip(tick) x WHERE pg_visible_in_snapshot(x, pg_current_snapshot())))
        AND e.id + 0 <= hi),
    -- Begun after the tick, committed since.
    (SELECT min(e.id + 0) FROM rowcast.events e
      WHERE e.written_by >= pg_snapshot_xmax(tick) AND pg_visible_in_snapshot(e.written_by, pg_current_snapshot())
        AND e.id + 0 <= hi));
END
$$;

CREATE OR REPLACE FUNCTION rowcast.tick_events(prev pg_snapshot, cur pg_snapshot, hi bigint, pos bigint, n integer)
RETURNS TABLE (id bigint, topic text)
LANGUAGE plpgsql STABLE SET enable_bitmapscan = off SET enable_sort = off AS $$
BEGIN
  RETURN QUERY
  SELECT e.id, e.topic FROM rowcast.events e
   WHERE e.id > pos AND e.id <= hi AND e.routed_at IS NULL
     AND pg_visible_in_snapshot(coalesce(e.written_by, '2'), cur) AND NOT pg_visible_in_snapshot(coalesce(e.written_by, '2'), prev)
   ORDER BY e.id LIMIT n;
END
$$;

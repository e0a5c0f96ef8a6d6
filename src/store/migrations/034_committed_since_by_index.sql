-- committed_since (migration 033) found a tick's stragglers with one scan whose condition is an OR of two ranges of
-- events_written_by: only a BitmapOr can read that by index. Routing runs on connections that plan no bitmap scan
-- (createPool's `queues`), so each new tick read the whole events table instead, every poll interval even when
-- idle: O(retained events) per tick. Two index scans, one per range, need no bitmap; least() skips a null as min()
-- over their union would.
CREATE OR REPLACE FUNCTION rowcast.committed_since(tick pg_snapshot, hi bigint) RETURNS bigint
LANGUAGE sql STABLE SET enable_seqscan = off SET max_parallel_workers_per_gather = 0 AS $$
  SELECT least(
    -- Running at the tick, committed since.
    (SELECT min(e.id + 0) FROM rowcast.events e
      WHERE e.written_by = ANY (ARRAY(SELECT x FROM pg_snapshot_xip(tick) x WHERE pg_visible_in_snapshot(x, pg_current_snapshot())))
        AND e.id + 0 <= hi),
    -- Begun after the tick, committed since.
    (SELECT min(e.id + 0) FROM rowcast.events e
      WHERE e.written_by >= pg_snapshot_xmax(tick) AND pg_visible_in_snapshot(e.written_by, pg_current_snapshot())
        AND e.id + 0 <= hi))
$$;

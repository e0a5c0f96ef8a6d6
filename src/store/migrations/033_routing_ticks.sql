-- Routing reads captured events by transaction-id snapshots ("ticks", as PgQ does) instead of updating each routed
-- event: an event is routed once its tick is, so routing writes nothing per event but the message it makes.
--
-- A tick is the set of events whose transactions committed between two snapshots: visible in `cur`, not in `prev`.
-- Every event visible in `cur` has an id at or below `hi` (the identity's last value, read after `cur` was taken),
-- and the tick's events are routed in id order: those at or below `pos` are routed. An event whose id is below an
-- earlier tick's `hi` but whose transaction committed later (a long transaction) is found through
-- `events_written_by`: its transaction was running at `prev`, so its xid is in prev's in-progress list or at or past
-- its xmax.
--
-- What counts is the transaction that wrote the event row, `written_by`; `txid` is the captured change's (for a
-- decoded change, the writer's on its own server, committed long before). Rows written before this migration have
-- none and count as committed before every tick ('2', the frozen xid): they are routed by routed_at or in the first
-- tick. Added without a default and given one after, so the table is not rewritten.
ALTER TABLE rowcast.events ADD COLUMN written_by xid8;
ALTER TABLE rowcast.events ALTER COLUMN written_by SET DEFAULT pg_current_xact_id();
CREATE TABLE rowcast.route_tick (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  prev pg_snapshot NOT NULL,
  cur  pg_snapshot NOT NULL,
  hi   bigint NOT NULL,
  pos  bigint NOT NULL,
  -- Every event of the tick is routed: the next routing pass starts a new tick from its own snapshot.
  done boolean NOT NULL
);

CREATE INDEX events_written_by ON rowcast.events (written_by);

-- The current tick starts where routing by `routed_at` left off: its `cur` is this transaction's snapshot, and its
-- `prev` sees nothing, so each event that `cur` sees and that was not routed before is routed in it. Events routed
-- before keep their `routed_at`; routing skips them by it.
INSERT INTO rowcast.route_tick (prev, cur, hi, pos, done)
SELECT '1:1:', pg_current_snapshot(), s.hi,
       coalesce((SELECT min(e.id) - 1 FROM rowcast.events e WHERE e.routed_at IS NULL), s.hi), false
  FROM (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS hi FROM rowcast.events_id_seq) s;

DROP FUNCTION rowcast.next_unrouted(integer);
DROP INDEX rowcast.events_unrouted;

-- The lowest id at or below a tick's hi of a transaction that was running at its snapshot and has committed since
-- (null if none). Found through events_written_by alone: by id, the primary key would be read from the first event on.
CREATE FUNCTION rowcast.committed_since(tick pg_snapshot, hi bigint) RETURNS bigint
LANGUAGE sql STABLE SET enable_seqscan = off SET max_parallel_workers_per_gather = 0 AS $$
  SELECT min(e.id + 0) FROM rowcast.events e
   WHERE (e.written_by = ANY (ARRAY(SELECT x FROM pg_snapshot_xip(tick) x WHERE pg_visible_in_snapshot(x, pg_current_snapshot())))
          OR e.written_by >= pg_snapshot_xmax(tick))
     AND pg_visible_in_snapshot(e.written_by, pg_current_snapshot()) AND e.id + 0 <= hi
$$;

-- The tick the next routing pass reads: the current one, or (once it is done) a new one ending at the calling
-- statement's snapshot (STABLE: the function sees what its caller sees, so the tick and the read agree).
CREATE FUNCTION rowcast.next_route_tick() RETURNS TABLE (prev pg_snapshot, cur pg_snapshot, hi bigint, pos bigint, fresh boolean)
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN t.ended THEN t.cur ELSE t.prev END,
         CASE WHEN t.ended THEN pg_current_snapshot() ELSE t.cur END,
         CASE WHEN t.ended THEN (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM rowcast.events_id_seq) ELSE t.hi END,
         CASE WHEN t.ended THEN least(t.hi, rowcast.committed_since(t.cur, t.hi) - 1) ELSE t.pos END,
         t.ended
    -- Past hi, a tick holds nothing more (its events are read in id order).
    FROM (SELECT r.*, r.done OR r.pos >= r.hi AS ended FROM rowcast.route_tick r) t
$$;

-- The next n events of a tick, in id order (the primary key, read in order from pos however large the backlog).
CREATE FUNCTION rowcast.tick_events(prev pg_snapshot, cur pg_snapshot, hi bigint, pos bigint, n integer)
RETURNS TABLE (id bigint, topic text)
LANGUAGE sql STABLE SET enable_bitmapscan = off SET enable_sort = off AS $$
  SELECT e.id, e.topic FROM rowcast.events e
   WHERE e.id > pos AND e.id <= hi AND e.routed_at IS NULL
     AND pg_visible_in_snapshot(coalesce(e.written_by, '2'), cur) AND NOT pg_visible_in_snapshot(coalesce(e.written_by, '2'), prev)
   ORDER BY e.id LIMIT n
$$;

-- Whether an event is routed: before ticks, by its routed_at; since, by the tick that holds it.
CREATE FUNCTION rowcast.event_routed(e rowcast.events) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT e.routed_at IS NOT NULL OR pg_visible_in_snapshot(coalesce(e.written_by, '2'), t.prev)
         OR (pg_visible_in_snapshot(coalesce(e.written_by, '2'), t.cur) AND (t.done OR e.id <= t.pos))
    FROM rowcast.route_tick t
$$;

-- Events not routed yet: those of the current tick after pos, and those of transactions the tick does not see.
CREATE FUNCTION rowcast.unrouted_events() RETURNS SETOF rowcast.events
LANGUAGE sql STABLE AS $$
  SELECT e.* FROM rowcast.events e, rowcast.route_tick t
   WHERE (e.id > t.pos OR e.written_by >= pg_snapshot_xmin(t.cur)) AND NOT rowcast.event_routed(e)
$$;

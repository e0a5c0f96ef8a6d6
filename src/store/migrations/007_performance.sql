-- Performance (issue 6).

-- Delivery claims read due rows in (available_at, id) order: with id in the index they come out of it already
-- sorted, and a claim of 200 reads about 200 index entries however large the backlog.
CREATE INDEX deliveries_due ON rowcast.deliveries (subscription, available_at, id) WHERE state IN ('pending', 'in_flight');
DROP INDEX rowcast.deliveries_claim;

-- The next unrouted events, oldest first, locked for routing. Right after a burst the planner's statistics still
-- say "hardly any unrouted events" and it picks a bitmap scan plus a sort of every unrouted row — per batch,
-- so a backlog of a million is sorted again for every 500 routed. Pinned here: the partial index, read in order.
CREATE FUNCTION rowcast.next_unrouted(n integer) RETURNS TABLE (id bigint, topic text)
LANGUAGE sql VOLATILE SET enable_bitmapscan = off SET enable_sort = off AS $$
  SELECT e.id, e.topic FROM rowcast.events e WHERE e.routed_at IS NULL ORDER BY e.id LIMIT n FOR UPDATE SKIP LOCKED
$$;

-- Invocations are claimed oldest first, in batches of hundreds: the index hands them out in that order, and the
-- function pins the plan to it for the same reason as next_unrouted.
CREATE INDEX invocations_due ON rowcast.invocations (function, available_at, created_at) WHERE state IN ('pending', 'in_flight');
DROP INDEX rowcast.invocations_claim;
CREATE FUNCTION rowcast.next_invocations(fn text, n integer) RETURNS SETOF uuid
LANGUAGE sql VOLATILE SET enable_bitmapscan = off SET enable_sort = off AS $$
  SELECT i.id FROM rowcast.invocations i
   WHERE i.function = fn AND i.state IN ('pending', 'in_flight') AND i.available_at <= now()
   ORDER BY i.available_at, i.created_at LIMIT n FOR UPDATE SKIP LOCKED
$$;

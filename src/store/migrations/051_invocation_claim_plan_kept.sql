-- Issue 20: as routing's tick functions (migration 050), the function that picks the invocations a claim takes sets
-- planner options, so as an SQL function it was planned anew at every claim (about 0.13 ms). As PL/pgSQL its
-- statement's plan is kept by the session. The statement is migration 007's, unchanged.
CREATE OR REPLACE FUNCTION rowcast.next_invocations(fn text, n integer) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SET enable_bitmapscan = off SET enable_sort = off AS $$
BEGIN
  RETURN QUERY
  SELECT i.id FROM rowcast.invocations i
   WHERE i.function = fn AND i.state IN ('pending', 'in_flight') AND i.available_at <= now()
   ORDER BY i.available_at, i.created_at LIMIT n FOR UPDATE SKIP LOCKED;
END
$$;

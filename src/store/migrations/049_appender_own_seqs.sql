-- Issue 20: a statement that appended to the log and leases its new messages at once (routing, a function's
-- results: migration 035) always found seqs drawn past its settled horizon, its own, so it read the lock table for
-- other writers on every call (about 0.1 ms of the routing statement, on the commit → webhook path). It now says
-- how many seqs it drew (own_seqs): those are all above the horizon it passes (drawn after the lease that returned
-- it), so when the sequence has moved by no more than that, every seq past the horizon is its own and no other
-- writer can hold one. Other callers pass nothing (0), as before.

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[])',
  ARRAY[
    ARRAY['known_hi bigint[] DEFAULT ''{}''::bigint[])',
          'known_hi bigint[] DEFAULT ''{}''::bigint[], own_seqs bigint DEFAULT 0)'],
    ARRAY['  IF h <= settled THEN
    -- Nothing drawn past the settled horizon: no writer can hold a seq it has not settled.',
          '  IF h <= settled + own_seqs THEN
    -- Nothing drawn past the settled horizon but the caller''s own seqs: no other writer can hold one below h.']],
  '049');
DROP FUNCTION rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[]);

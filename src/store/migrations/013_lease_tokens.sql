-- Every lease of a delivery or invocation gets a token of its own, and its result or release is recorded only
-- while that token is still the row's. Before, the fencing token was `attempts`, but claims (and routing's direct
-- leases) commit without waiting for their WAL flush: a PostgreSQL crash can lose a claim, and the same
-- (id, attempts), even the same bigserial id, is then handed out again; a process still retrying its buffered
-- results would record them on the new owner's lease. gen_random_uuid() does not repeat after a crash.
-- A nullable column without a default: no table rewrite. Rows in flight at the upgrade keep a NULL token, which no
-- result of this version matches (a process of the previous version still records its own by attempts); their
-- leases expire and the next claim gives them one. Results still match the attempt as well, so a lease taken over
-- by a process of the previous version (which sets no token) fences this version's results as before.
-- Not indexed: results find their rows by id.
ALTER TABLE rowcast.deliveries ADD COLUMN lease uuid;
ALTER TABLE rowcast.invocations ADD COLUMN lease uuid;
COMMENT ON COLUMN rowcast.deliveries.lease IS 'fencing token of the current lease: set by every claim and direct lease, required by its result and release';
COMMENT ON COLUMN rowcast.invocations.lease IS 'fencing token of the current lease: set by every claim and direct lease, required by its result and release';

-- Segments on (docs/architecture.md, "Segments"): routing writes one row per batch, not a message copy per event,
-- on topics read only through cursors. The tests and the fault suite pass with them on, and with the message
-- built by the process that leases it (migration 043) they cost PostgreSQL's CPU what the copy did to one
-- subscription, with none of its WAL. Existing installations switch too: the log is read the same way whichever
-- way routing wrote it, so nothing routed before this migration moves, and what routing writes next is segments.
-- `UPDATE rowcast.installation SET log_segments = false` goes back to copies.
ALTER TABLE rowcast.installation ALTER COLUMN log_segments SET DEFAULT true;
UPDATE rowcast.installation SET log_segments = true;

-- Issue 20: at fan-out, every cursor of a topic read every segment entry's event on its own, so one lease call
-- returned each event's columns (and looked the event up, and printed its jsonb) once per cursor: at fan-out 10 it
-- cost more than the copy into message rows it replaced, in PostgreSQL and in the process that parses the rows. Now
-- a lease call returns an event once: an entry that an earlier range of the same call already returned with its
-- event comes back with only its event id (event_op NULL), and the process reuses the message it built for it
-- (src/store/log-leases.ts). Per topic, the call keeps the seqs (lo, hi] it returned with their events; consecutive
-- or overlapping ranges widen them, and any other range replaces them.
--
-- rowcast.patch_function applies anchored text patches to a function's definition, each anchor checked to occur
-- once, as migrations 042 and 043 did inline; later migrations that patch a function use it.

CREATE FUNCTION rowcast.patch_function(fn regprocedure, patches text[], migration text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  def text := pg_get_functiondef(fn);
  p text[];
BEGIN
  FOREACH p SLICE 1 IN ARRAY patches LOOP
    IF (length(def) - length(replace(def, p[1], ''))) / length(p[1]) <> 1 THEN
      RAISE EXCEPTION 'rowcast migration %: % is not the function the migration patches (at "%")', migration, fn, p[1];
    END IF;
    def := replace(def, p[1], p[2]);
  END LOOP;
  EXECUTE def;
END
$$;
REVOKE ALL ON FUNCTION rowcast.patch_function(regprocedure, text[], text) FROM PUBLIC;

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean)',
  ARRAY[
    ARRAY['  SETTLE_POLLS CONSTANT int := 5;',
          '  SETTLE_POLLS CONSTANT int := 5;
  -- Per topic, the seqs (lo, hi] whose entries this call returned with their events (migration 046).
  shared_topics text[] := ''{}'';
  shared_lo bigint[] := ''{}'';
  shared_hi bigint[] := ''{}'';
  si int;
  sa bigint;
  sb bigint;'],
    ARRAY['    IF NOT sub.fifo THEN
      RETURN QUERY',
          '    IF NOT sub.fifo THEN
      si := array_position(shared_topics, sub.topic);
      sa := coalesce(shared_lo[si], 0);
      sb := coalesce(shared_hi[si], 0);
      RETURN QUERY'],
    ARRAY['               e.id, e.op, e.source::text, e.capture, e.schema_name, e.table_name, e.txid::text, e.key::text,',
          '               g.event_id, e.op, e.source::text, e.capture, e.schema_name, e.table_name, e.txid::text, e.key::text,'],
    ARRAY['          FROM rowcast.segment_entries(sub.topic, f, t) g JOIN rowcast.events e ON e.id = g.event_id
          LEFT JOIN rowcast.captures c ON c.name = e.capture
         ORDER BY 8;
      CONTINUE;',
          '          FROM rowcast.segment_entries(sub.topic, f, t) g
          -- An entry returned with its event earlier in this call is not looked up again: the gate is on the
          -- outer row alone, so PostgreSQL skips the index scan (OFFSET 0 keeps the subquery from being flattened).
          LEFT JOIN LATERAL (SELECT e.* FROM rowcast.events e
                              WHERE e.id = g.event_id AND NOT (g.seq > sa AND g.seq <= sb) OFFSET 0) e ON true
          LEFT JOIN rowcast.captures c ON c.name = e.capture
         WHERE e.id IS NOT NULL OR (g.seq > sa AND g.seq <= sb)
         ORDER BY 8;
      IF si IS NULL THEN
        shared_topics := shared_topics || sub.topic;
        shared_lo := shared_lo || f;
        shared_hi := shared_hi || t;
      ELSIF f <= sb AND t >= sa THEN
        shared_lo[si] := least(sa, f);
        shared_hi[si] := greatest(sb, t);
      ELSE
        shared_lo[si] := f;
        shared_hi[si] := t;
      END IF;
      CONTINUE;']],
  '046');

-- Logical capture's progress is fenced (compare-and-set). A reader that lost the slot (its stream broke; another
-- process took over and wrote further) may still have a batch in flight: written unchecked, its events became
-- copies under new ids and the recorded position went back to the batch's end. Every write of events now moves
-- the position only from where this reader last left it, in the same transaction as the events; otherwise it
-- raises RCF01 and the whole transaction rolls back (the reader then stops and stands by).
CREATE FUNCTION rowcast.advance_capture_progress(reader_slot text, from_lsn pg_lsn, to_lsn pg_lsn) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  stored pg_lsn;
BEGIN
  -- Re-checked after a concurrent update commits (READ COMMITTED re-evaluates the WHERE): a true compare-and-set.
  UPDATE rowcast.capture_progress SET lsn = to_lsn, updated_at = now() WHERE slot = reader_slot AND lsn = from_lsn;
  IF FOUND THEN
    RETURN true;
  END IF;
  -- The slot's first write: no position recorded yet is the same as 0/0.
  IF from_lsn = '0/0'::pg_lsn THEN
    INSERT INTO rowcast.capture_progress (slot, lsn) VALUES (reader_slot, to_lsn) ON CONFLICT (slot) DO NOTHING;
    IF FOUND THEN
      RETURN true;
    END IF;
  END IF;
  SELECT p.lsn INTO stored FROM rowcast.capture_progress p WHERE p.slot = reader_slot;
  RAISE EXCEPTION 'logical capture: slot % is at %, not at % where this reader left it: another reader took over; this batch is refused', reader_slot, stored, from_lsn
    USING ERRCODE = 'RCF01';
END
$$;
REVOKE ALL ON FUNCTION rowcast.advance_capture_progress(text, pg_lsn, pg_lsn) FROM PUBLIC;

-- promote_staged takes the reader's position too, and is fenced the same way; the unfenced version goes.
DROP FUNCTION rowcast.promote_staged(text, pg_lsn, pg_lsn, bigint, integer);
CREATE FUNCTION rowcast.promote_staged(reader_slot text, from_lsn pg_lsn, commit_lsn pg_lsn, end_lsn pg_lsn, staged bigint, chunk integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  found bigint;
  first bigint := 0;
  r record;
BEGIN
  -- First, so that a refused promotion does no work, and the position's row stays locked until the commit.
  PERFORM rowcast.advance_capture_progress(reader_slot, from_lsn, end_lsn);
  SELECT count(*) INTO found FROM rowcast.capture_staging s WHERE s.lsn = commit_lsn;
  IF found <> staged THEN
    RAISE EXCEPTION 'logical capture: % of % staged changes of the transaction committed at % are there', found, staged, commit_lsn;
  END IF;
  WHILE first < staged LOOP
    FOR r IN
      SELECT s.function_name, s.op, array_agg(s.old_row ORDER BY s.seq) AS olds, array_agg(s.new_row ORDER BY s.seq) AS news, array_agg(s.xid ORDER BY s.seq) AS xids
        FROM rowcast.capture_staging s
       WHERE s.lsn = commit_lsn AND s.seq >= first AND s.seq < first + chunk
       GROUP BY s.part, s.function_name, s.op
       ORDER BY s.part
    LOOP
      EXECUTE format('SELECT rowcast.%I($1, $2, $3, $4)', r.function_name) USING r.op, r.olds, r.news, r.xids;
    END LOOP;
    first := first + chunk;
  END LOOP;
  TRUNCATE rowcast.capture_staging;
  RETURN staged;
END
$$;
REVOKE ALL ON FUNCTION rowcast.promote_staged(text, pg_lsn, pg_lsn, pg_lsn, bigint, integer) FROM PUBLIC;

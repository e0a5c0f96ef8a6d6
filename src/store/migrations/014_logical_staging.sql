-- Logical capture of large transactions: the reader holds at most a chunk of a transaction's changes in memory.
-- Past that it stages them here, chunk by chunk, keyed by the transaction's commit position (pgoutput's BEGIN
-- carries it); at the commit, promote_staged turns them into events and records the position, in one
-- transaction. Only committed transactions are decoded, so nothing staged belongs to a rolled-back one; what a
-- stopped or crashed reader left staged (a transaction it never finished) is discarded by the next reader before
-- it stages its first chunk. Unlogged: staged rows are rebuilt from the slot after any crash, so they need no WAL.
-- One reader per database (the slot streams to one connection), so the table holds one transaction at a time.
CREATE UNLOGGED TABLE rowcast.capture_staging (
  lsn           pg_lsn NOT NULL,
  seq           bigint NOT NULL,
  -- Consecutive changes of one capture function and operation share a part: one call of that function.
  part          bigint NOT NULL,
  function_name text NOT NULL,
  op            text NOT NULL,
  old_row       jsonb,
  new_row       jsonb,
  xid           bigint NOT NULL,
  PRIMARY KEY (lsn, seq)
);

-- Writes the events of the staged transaction committed at commit_lsn, in commit order and in bounded calls of
-- the capture functions (`chunk` changes at most), records end_lsn as the slot's position, and empties the
-- staging table. Returns how many changes it promoted: 0 if the position is already recorded (a reader that
-- lost the slot finished writing this transaction after another one took over), so a change is one event.
CREATE FUNCTION rowcast.promote_staged(reader_slot text, commit_lsn pg_lsn, end_lsn pg_lsn, staged bigint, chunk integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  written pg_lsn;
  found bigint;
  first bigint := 0;
  r record;
BEGIN
  SELECT p.lsn INTO written FROM rowcast.capture_progress p WHERE p.slot = reader_slot FOR UPDATE;
  IF written >= end_lsn THEN
    RETURN 0;
  END IF;
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
  INSERT INTO rowcast.capture_progress (slot, lsn) VALUES (reader_slot, end_lsn)
    ON CONFLICT (slot) DO UPDATE SET lsn = EXCLUDED.lsn, updated_at = now();
  RETURN staged;
END
$$;
REVOKE ALL ON FUNCTION rowcast.promote_staged(text, pg_lsn, pg_lsn, bigint, integer) FROM PUBLIC;

-- PostgreSQL sources (issue 19 §3): a large transaction on the source is not held in the reader's memory. Past a
-- chunk of events the reader stages them here, chunk by chunk, keyed by the source and the transaction's commit
-- position; at the commit, promote_source_staged writes them as events and moves the source's position, in one
-- transaction. Only committed transactions are decoded, so nothing staged belongs to a rolled-back one; what a
-- stopped or crashed reader left staged is discarded by the next reader of that source before its first chunk.
-- Unlogged: staged events are rebuilt from the source's slot after any crash. One reader per source (the
-- source's advisory lock in the store), so the table holds at most one transaction per source.
CREATE UNLOGGED TABLE rowcast.source_staging (
  source text   NOT NULL,
  lsn    pg_lsn NOT NULL,
  seq    bigint NOT NULL,
  event  jsonb  NOT NULL,
  PRIMARY KEY (source, lsn, seq)
);

-- Fenced: the source's recorded position moves only from where this reader last left it (compare-and-set), in
-- the transaction that writes the events up to it; otherwise RCF01 and the whole transaction rolls back.
CREATE FUNCTION rowcast.advance_source_lsn(reader_source text, from_lsn pg_lsn, to_lsn pg_lsn) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  stored text;
BEGIN
  UPDATE rowcast.source_progress SET position = jsonb_build_object('lsn', to_lsn::text), updated_at = now()
   WHERE source = reader_source AND (position ->> 'lsn')::pg_lsn = from_lsn;
  IF FOUND THEN
    RETURN true;
  END IF;
  IF from_lsn = '0/0'::pg_lsn THEN
    INSERT INTO rowcast.source_progress (source, position) VALUES (reader_source, jsonb_build_object('lsn', to_lsn::text)) ON CONFLICT (source) DO NOTHING;
    IF FOUND THEN
      RETURN true;
    END IF;
  END IF;
  SELECT p.position ->> 'lsn' INTO stored FROM rowcast.source_progress p WHERE p.source = reader_source;
  RAISE EXCEPTION 'source %: its position is %, not % where this reader left it: another reader took over; this batch is refused', reader_source, stored, from_lsn
    USING ERRCODE = 'RCF01';
END
$$;
REVOKE ALL ON FUNCTION rowcast.advance_source_lsn(text, pg_lsn, pg_lsn) FROM PUBLIC;

-- Writes the staged events of the source's transaction committed at commit_lsn as events, in their order, moves
-- the source's position to end_lsn (fenced) and empties the source's staging. Returns how many it wrote.
CREATE FUNCTION rowcast.promote_source_staged(reader_source text, from_lsn pg_lsn, commit_lsn pg_lsn, end_lsn pg_lsn, staged bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  found bigint;
BEGIN
  -- First, so that a refused promotion does no work, and the position's row stays locked until the commit.
  PERFORM rowcast.advance_source_lsn(reader_source, from_lsn, end_lsn);
  SELECT count(*) INTO found FROM rowcast.source_staging s WHERE s.source = reader_source AND s.lsn = commit_lsn;
  IF found <> staged THEN
    RAISE EXCEPTION 'source %: % of % staged events of the transaction committed at % are there', reader_source, found, staged, commit_lsn;
  END IF;
  INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, source)
  SELECT x.capture, x.topic, x.function, x.op, x.schema_name, x.table_name, x.key, x.before, x.after, x.changed, x.source
    FROM rowcast.source_staging s,
         jsonb_to_record(s.event) AS x(capture text, topic text, function text, op text, schema_name text, table_name text,
                                       key jsonb, before jsonb, after jsonb, changed text[], source jsonb)
   WHERE s.source = reader_source AND s.lsn = commit_lsn
   ORDER BY s.seq;
  DELETE FROM rowcast.source_staging s WHERE s.source = reader_source;
  RETURN staged;
END
$$;
REVOKE ALL ON FUNCTION rowcast.promote_source_staged(text, pg_lsn, pg_lsn, pg_lsn, bigint) FROM PUBLIC;

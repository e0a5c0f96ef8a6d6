-- Logical-replication capture (captures with mode 'logical'): the reader writes the events of decoded
-- transactions together with the log position it has written up to, in one transaction. After a crash the slot
-- may send those transactions again (its position is confirmed only after that commit); the reader skips every
-- transaction that ends at or before the position recorded here, so each change becomes exactly one event.
CREATE TABLE rowcast.capture_progress (
  slot       text PRIMARY KEY,
  lsn        pg_lsn NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The 64-bit id (xid8, as events.txid holds) of a decoded transaction's 32-bit xid: a transaction the log has
-- already committed is older than the next xid, so its epoch is the next xid's, or the one before if it wrapped.
CREATE FUNCTION rowcast.xid8_of(xid bigint) RETURNS xid8 LANGUAGE sql STABLE AS $$
  SELECT ((((nx >> 32) - CASE WHEN xid > (nx & 4294967295) THEN 1 ELSE 0 END) << 32) | xid)::text::xid8
    FROM (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS nx) AS s
$$;

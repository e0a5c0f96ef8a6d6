-- Issue 20: the lease runs fewer statements per call. A lease call that appends one message cost PostgreSQL about
-- 0.2 ms (a loop in PostgreSQL), mostly in starting its statements. Now: the database's oid is looked up only when
-- the lock table is read; the sequence is named, not found through pg_get_serial_sequence; the stretches the caller
-- holds are searched only when it holds some; and a new range advances its cursor in the statement that inserts it.

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[], bigint)',
  ARRAY[
    ARRAY['  db oid := (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
', ''],
    ARRAY['AND l.database = db', 'AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())'],
    ARRAY['  h := coalesce(pg_sequence_last_value(pg_get_serial_sequence(''rowcast.messages'', ''seq'')::regclass), 0);',
          '  h := coalesce(pg_sequence_last_value(''rowcast.messages_seq_seq''::regclass), 0);'],
    ARRAY['          cur.until_seq := coalesce(pg_sequence_last_value(pg_get_serial_sequence(''rowcast.messages'', ''seq'')::regclass), 0);',
          '          cur.until_seq := coalesce(pg_sequence_last_value(''rowcast.messages_seq_seq''::regclass), 0);'],
    ARRAY['      UPDATE rowcast.cursors c SET leased_to = t WHERE c.subscription = s;
      CONTINUE WHEN found_n = 0;
      f := cur.leased_to; tok := gen_random_uuid(); att := 1;
      INSERT INTO rowcast.cursor_leases (subscription, from_seq, to_seq, lease, lease_owner, expires_at)
      VALUES (s, f, t, tok, owner, now() + lease_ms * interval ''1 millisecond'');',
          '      IF found_n = 0 THEN
        UPDATE rowcast.cursors c SET leased_to = t WHERE c.subscription = s;
        CONTINUE;
      END IF;
      f := cur.leased_to; tok := gen_random_uuid(); att := 1;
      WITH advanced AS (UPDATE rowcast.cursors c SET leased_to = t WHERE c.subscription = s)
      INSERT INTO rowcast.cursor_leases (subscription, from_seq, to_seq, lease, lease_owner, expires_at)
      VALUES (s, f, t, tok, owner, now() + lease_ms * interval ''1 millisecond'');'],
    ARRAY['      SELECT k.lo, k.hi INTO sa, sb FROM unnest(shared_topics, shared_lo, shared_hi) k(topic, lo, hi)
       WHERE k.topic = sub.topic AND k.lo < t AND k.hi > f
       ORDER BY least(k.hi, t) - greatest(k.lo, f) DESC LIMIT 1;',
          '      IF cardinality(shared_topics) > 0 THEN
        SELECT k.lo, k.hi INTO sa, sb FROM unnest(shared_topics, shared_lo, shared_hi) k(topic, lo, hi)
         WHERE k.topic = sub.topic AND k.lo < t AND k.hi > f
         ORDER BY least(k.hi, t) - greatest(k.lo, f) DESC LIMIT 1;
      END IF;']],
  '055');

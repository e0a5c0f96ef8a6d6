-- Issue 20: two conditions of the lease were planned at every call (pg_stat_statements with track_planning: 3,001
-- plans in 3,000 calls, 12 and 3 µs). Each joined a cheap test to an EXISTS in one expression; a custom plan folds
-- the test and drops the EXISTS, so PostgreSQL's plan cache always judged the generic plan dearer and planned anew.
-- Nested, the cheap test is a simple expression and the EXISTS is planned only when it is asked.

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[], bigint)',
  ARRAY[
    ARRAY['  IF NOT appending AND cardinality(w) > 0 AND NOT EXISTS (
       SELECT 1 FROM rowcast.cursors c JOIN rowcast.subscriptions x ON x.name = c.subscription
        WHERE c.subscription = ANY (subs) AND c.leased_to < settled
          AND (EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = x.topic AND m.seq > c.leased_to AND m.seq <= settled)
                 OR EXISTS (SELECT 1 FROM rowcast.segment_entries(x.topic, c.leased_to, settled)))) THEN
    FOR i IN 1..SETTLE_POLLS LOOP
      PERFORM pg_sleep(0.0005);
      IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (w)) THEN
        w := ''{}'';
        EXIT;
      END IF;
    END LOOP;
  END IF;',
          '  IF NOT appending AND cardinality(w) > 0 THEN
    IF NOT EXISTS (
         SELECT 1 FROM rowcast.cursors c JOIN rowcast.subscriptions x ON x.name = c.subscription
          WHERE c.subscription = ANY (subs) AND c.leased_to < settled
            AND (EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = x.topic AND m.seq > c.leased_to AND m.seq <= settled)
                   OR EXISTS (SELECT 1 FROM rowcast.segment_entries(x.topic, c.leased_to, settled)))) THEN
      FOR i IN 1..SETTLE_POLLS LOOP
        PERFORM pg_sleep(0.0005);
        IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (w)) THEN
          w := ''{}'';
          EXIT;
        END IF;
      END LOOP;
    END IF;
  END IF;'],
    ARRAY['      CONTINUE WHEN sub.fifo AND EXISTS (SELECT 1 FROM rowcast.cursor_leases l WHERE l.subscription = s);',
          '      IF sub.fifo THEN
        CONTINUE WHEN EXISTS (SELECT 1 FROM rowcast.cursor_leases l WHERE l.subscription = s);
      END IF;']],
  '052');

-- Issue 20: every lease read PostgreSQL's lock table (pg_locks copies the whole table, about 0.1 ms at a few
-- hundred connections) once for the writers of the new seqs and once more while a barrier was pending, and a lease
-- is mostly that fixed cost per call. Now a call that finds nothing drawn past its settled horizon (a backlog
-- being drained, an idle log) reads it not at all: no seq above it can be in flight. A call that does read it reads
-- it once, after the sequence, for both questions: which transactions write the log now, and whether the barrier's
-- writers still run. The answers are those of the later moment, which settles a barrier no later than before.

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[])',
  ARRAY[
    ARRAY['  IF barrier_seq IS NOT NULL AND barrier_seq > settled
     AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (barrier_writers)) THEN
    settled := barrier_seq;
  END IF;
  h := coalesce(pg_sequence_last_value(pg_get_serial_sequence(''rowcast.messages'', ''seq'')::regclass), 0);
  SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), ''{}'') INTO w
    FROM pg_locks l
   WHERE l.locktype = ''relation'' AND l.relation IN (''rowcast.messages''::regclass, ''rowcast.log_segments''::regclass) AND l.mode = ''RowExclusiveLock''
     AND l.database = db AND l.pid IS DISTINCT FROM pg_backend_pid();',
          '  h := coalesce(pg_sequence_last_value(pg_get_serial_sequence(''rowcast.messages'', ''seq'')::regclass), 0);
  IF h <= settled THEN
    -- Nothing drawn past the settled horizon: no writer can hold a seq it has not settled.
    w := ''{}'';
  ELSE
    -- One read of the lock table, after the sequence: the log''s writers now, and whether the barrier''s still run.
    SELECT coalesce(array_agg(DISTINCT l.virtualtransaction) FILTER (
             WHERE l.locktype = ''relation'' AND l.mode = ''RowExclusiveLock'' AND l.database = db
               AND l.relation IN (''rowcast.messages''::regclass, ''rowcast.log_segments''::regclass)
               AND l.pid IS DISTINCT FROM pg_backend_pid()), ''{}''),
           coalesce(bool_or(l.virtualtransaction = ANY (barrier_writers)), false)
      INTO w, barrier_running
      FROM pg_locks l;
    IF barrier_seq IS NOT NULL AND barrier_seq > settled AND NOT barrier_running THEN
      settled := barrier_seq;
    END IF;
  END IF;'],
    ARRAY['  SETTLE_POLLS CONSTANT int := 5;',
          '  SETTLE_POLLS CONSTANT int := 5;
  barrier_running boolean;']],
  '048');

-- A cursor passes over what an SNS subscription is published while it awaits its confirmation (or is unsubscribed),
-- as delivery rows are not made for it. Until now nothing recorded that, so once the subscription was confirmed its
-- delivery detail read those messages as delivered (the cursor had passed them). cursor_skips holds each stretch
-- (from_seq, to_seq] a cursor passed so, written by the lease that passes it; the delivery detail and list read it,
-- and retention deletes a stretch once its topic keeps no message of it. The lease also reads its topic's limits
-- once per subscription instead of joining the topic to every message it returns.

CREATE TABLE rowcast.cursor_skips (
  subscription text   NOT NULL REFERENCES rowcast.cursors (subscription) ON DELETE CASCADE,
  from_seq     bigint NOT NULL,
  to_seq       bigint NOT NULL,
  PRIMARY KEY (subscription, from_seq)
);

CREATE OR REPLACE FUNCTION rowcast.lease_log_ranges(subs text[], counts int[], lease_ms int, owner text,
                                         settled bigint, barrier_seq bigint, barrier_writers text[], appending boolean)
RETURNS TABLE (kind text, subscription text, from_seq bigint, to_seq bigint, lease uuid, attempt int,
               writers text[], seq bigint, message_id uuid, topic text, subject text, body text, content_type text,
               attributes jsonb, attribute_types jsonb, created_at text, trace text, max_message_size int,
               large_messages text, claim_check_ttl_ms bigint, group_key text, held boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  db oid := (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
  h bigint;
  w text[];
  s text;
  n int;
  sub record;
  cur record;
  f bigint;
  t bigint;
  tok uuid;
  att int;
  found_n int;
  last_seq bigint;
  stop_at bigint;
  SETTLE_POLLS CONSTANT int := 5;
BEGIN
  IF barrier_seq IS NOT NULL AND barrier_seq > settled
     AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (barrier_writers)) THEN
    settled := barrier_seq;
  END IF;
  h := coalesce(pg_sequence_last_value(pg_get_serial_sequence('rowcast.messages', 'seq')::regclass), 0);
  SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}') INTO w
    FROM pg_locks l
   WHERE l.locktype = 'relation' AND l.relation = 'rowcast.messages'::regclass AND l.mode = 'RowExclusiveLock'
     AND l.database = db AND l.pid IS DISTINCT FROM pg_backend_pid();
  -- Nothing to hand out below the settled horizon while writers of the new messages still run (an idle chain: the
  -- router's next pass): wait a few milliseconds for them here rather than a round trip and a timer later.
  IF NOT appending AND cardinality(w) > 0 AND NOT EXISTS (
       SELECT 1 FROM rowcast.cursors c JOIN rowcast.subscriptions x ON x.name = c.subscription
        WHERE c.subscription = ANY (subs) AND c.leased_to < settled
          AND EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = x.topic AND m.seq > c.leased_to AND m.seq <= settled)) THEN
    FOR i IN 1..SETTLE_POLLS LOOP
      PERFORM pg_sleep(0.0005);
      IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (w)) THEN
        w := '{}';
        EXIT;
      END IF;
    END LOOP;
  END IF;
  IF cardinality(w) = 0 THEN
    settled := greatest(settled, h);
  END IF;
  kind := 'horizon'; from_seq := settled; to_seq := h; writers := w;
  RETURN NEXT;
  kind := 'message'; writers := NULL;

  -- In name order: two processes leasing the same cursors lock their rows in the same order, never in a cycle.
  FOR s, n IN SELECT u.s, u.n FROM unnest(subs, counts) AS u(s, n) ORDER BY u.s LOOP
    -- The topic's limits are read here once, not joined to every message of the range.
    SELECT x.topic, x.cursor, x.sns_state, x.protocol, coalesce(tp.fifo, false) AS fifo,
           coalesce(tp.fifo_dead_blocks, false) AS dead_blocks, coalesce(tp.max_message_size, 262144) AS max_message_size,
           coalesce(tp.large_messages, 'reject') AS large_messages, coalesce(tp.claim_check_ttl_ms, 86400000) AS claim_check_ttl_ms
      INTO sub FROM rowcast.subscriptions x LEFT JOIN rowcast.topics tp ON tp.name = x.topic WHERE x.name = s;
    CONTINUE WHEN NOT FOUND;
    -- A range whose process died (its lease expired) is taken over whole (by claims: an appending statement leases only what is new).
    tok := NULL;
    IF NOT appending THEN
      UPDATE rowcast.cursor_leases c
         SET lease = gen_random_uuid(), lease_owner = owner, expires_at = now() + lease_ms * interval '1 millisecond',
             attempts = c.attempts + 1
       WHERE (c.subscription, c.from_seq) = (
               SELECT x.subscription, x.from_seq FROM rowcast.cursor_leases x
                WHERE x.subscription = s AND x.expires_at <= now() ORDER BY x.from_seq LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING c.from_seq, c.to_seq, c.lease, c.attempts INTO f, t, tok, att;
    END IF;
    IF tok IS NULL THEN
      IF appending THEN
        -- A cursor another process is leasing from right now is left to it: an appending statement waits for no one.
        SELECT c.leased_to, c.drain_writers, c.until_seq INTO cur FROM rowcast.cursors c WHERE c.subscription = s
           FOR UPDATE SKIP LOCKED;
      ELSE
        SELECT c.leased_to, c.drain_writers, c.until_seq INTO cur FROM rowcast.cursors c WHERE c.subscription = s FOR UPDATE;
      END IF;
      CONTINUE WHEN NOT FOUND;
      -- FIFO: one range at a time (taken over whole once it expires), so no two processes send one group at once.
      -- Checked under the cursor's row lock, which every new range of it takes: a range committed meanwhile is seen.
      CONTINUE WHEN sub.fifo AND EXISTS (SELECT 1 FROM rowcast.cursor_leases l WHERE l.subscription = s);
      -- Draining a cursor switched back to rows is the claims' work.
      CONTINUE WHEN appending AND NOT sub.cursor;
      IF NOT sub.cursor THEN
        -- Switched back to rows: drain up to the last message routed under the cursor, then the cursor goes.
        IF cur.until_seq IS NULL THEN
          IF cur.drain_writers IS NULL THEN
            UPDATE rowcast.cursors c SET drain_writers = coalesce((
                     SELECT array_agg(DISTINCT l.virtualtransaction) FROM pg_locks l
                      WHERE l.locktype = 'virtualxid' AND l.pid <> pg_backend_pid()), '{}')
             WHERE c.subscription = s;
            CONTINUE;
          END IF;
          CONTINUE WHEN EXISTS (SELECT 1 FROM pg_locks l WHERE l.virtualtransaction = ANY (cur.drain_writers));
          cur.until_seq := coalesce(pg_sequence_last_value(pg_get_serial_sequence('rowcast.messages', 'seq')::regclass), 0);
          UPDATE rowcast.cursors c SET until_seq = cur.until_seq WHERE c.subscription = s;
        END IF;
        IF cur.leased_to >= cur.until_seq THEN
          DELETE FROM rowcast.cursors c WHERE c.subscription = s
             AND NOT EXISTS (SELECT 1 FROM rowcast.cursor_leases l WHERE l.subscription = s);
          CONTINUE;
        END IF;
      END IF;
      stop_at := CASE WHEN sub.cursor THEN settled ELSE least(settled, cur.until_seq) END;
      CONTINUE WHEN cur.leased_to >= stop_at;
      -- A subscription waiting for SNS's confirmation gets nothing published meanwhile, as with delivery rows. What
      -- it passed over is written down (one row per stretch, extended while it lasts: the cursor's row lock orders
      -- them), so that a message in it does not read as delivered once the subscription is confirmed.
      IF sub.sns_state <> 'confirmed' THEN
        UPDATE rowcast.cursor_skips k SET to_seq = stop_at WHERE k.subscription = s AND k.to_seq = cur.leased_to;
        IF NOT FOUND THEN
          INSERT INTO rowcast.cursor_skips (subscription, from_seq, to_seq) VALUES (s, cur.leased_to, stop_at);
        END IF;
        UPDATE rowcast.cursors c SET leased_to = stop_at WHERE c.subscription = s;
        CONTINUE;
      END IF;
      SELECT count(*), max(y.seq) INTO found_n, last_seq
        FROM (SELECT m.seq FROM rowcast.messages m WHERE m.topic = sub.topic AND m.seq > cur.leased_to AND m.seq <= stop_at
               ORDER BY m.seq LIMIT n) y;
      -- Fewer than asked: the range reaches the horizon, so the gap is not scanned again.
      t := CASE WHEN found_n < n THEN stop_at ELSE last_seq END;
      UPDATE rowcast.cursors c SET leased_to = t WHERE c.subscription = s;
      CONTINUE WHEN found_n = 0;
      f := cur.leased_to; tok := gen_random_uuid(); att := 1;
      INSERT INTO rowcast.cursor_leases (subscription, from_seq, to_seq, lease, lease_owner, expires_at)
      VALUES (s, f, t, tok, owner, now() + lease_ms * interval '1 millisecond');
    END IF;
    IF NOT sub.fifo THEN
      RETURN QUERY
        SELECT 'message'::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
               -- MessageStructure 'json' (SNS API): the message for the subscription's protocol, else the default one.
               CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> sub.protocol, m.body) END,
               m.content_type, m.attributes, m.attribute_types,
               to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), m.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean
          FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t
         ORDER BY m.seq;
      CONTINUE;
    END IF;
    -- FIFO: each message with its group (as fan-out gives a delivery row its group) and whether the group is held:
    -- a delivery row of it is pending or in flight (or dead, where the topic holds a group behind a dead message).
    -- Every such row is earlier than this range (ranges go one at a time, and their rows are written when they
    -- complete), so a held message is not sent: it becomes a pending row behind them (cursor-reader.ts).
    RETURN QUERY
      WITH r AS (
        SELECT m.*, coalesce(m.group_key, '') AS gk FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t),
      k AS (SELECT DISTINCT r.gk FROM r),
      -- The subscription's dead rows are read once for all the range's groups, not once per group.
      dead AS (
        SELECT DISTINCT e.group_key AS gk FROM rowcast.deliveries e
         WHERE sub.dead_blocks AND e.subscription = s AND e.state = 'dead' AND e.group_key IN (SELECT k.gk FROM k)),
      g AS (
        SELECT k.gk, EXISTS (SELECT 1 FROM rowcast.deliveries e
                              WHERE e.subscription = s AND e.group_key = k.gk AND e.state IN ('pending', 'in_flight'))
                     OR k.gk IN (SELECT dead.gk FROM dead) AS held
          FROM k)
      SELECT 'message'::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
             CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> sub.protocol, m.body) END,
             m.content_type, m.attributes, m.attribute_types,
             to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), m.trace,
             sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, m.gk, g.held
        FROM r m JOIN g ON g.gk = m.gk
       ORDER BY m.seq;
  END LOOP;
END
$$;

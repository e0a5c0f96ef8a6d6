-- Issue 20, first step: a subscription may read its topic's messages through a cursor instead of one delivery row
-- per message (`cursor: true` in the config). The messages table is the log, ordered by seq; a cursor leases ranges
-- of it, fenced by a random token, and writes nothing per message it delivers. Rows in rowcast.deliveries are
-- written only for what needs state of its own: a failed attempt waiting for its retry, a dead delivery, work handed
-- back unsent. docs/architecture.md ("Cursors") says why this never skips a message.

ALTER TABLE rowcast.subscriptions ADD COLUMN cursor boolean NOT NULL DEFAULT false;

CREATE TABLE rowcast.cursors (
  subscription   text PRIMARY KEY REFERENCES rowcast.subscriptions (name) ON DELETE CASCADE,
  -- Every message of the topic with seq <= leased_to was handed out in a range (or lay in a gap between them).
  leased_to      bigint NOT NULL,
  -- Switched back to rows: the transactions that may have routed under the cursor (running when the drain began);
  -- once they ended, until_seq is the last seq the cursor must still deliver, and the cursor goes when it is done.
  drain_writers  text[],
  until_seq      bigint,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- Ranges (from_seq, to_seq] of a cursor being delivered. A range is completed (deleted) as a whole, with rows for
-- its failures, only while its lease token holds; an expired range is taken over whole by another process.
CREATE TABLE rowcast.cursor_leases (
  subscription text NOT NULL REFERENCES rowcast.cursors (subscription) ON DELETE CASCADE,
  from_seq     bigint NOT NULL,
  to_seq       bigint NOT NULL,
  lease        uuid NOT NULL,
  lease_owner  text,
  expires_at   timestamptz NOT NULL,
  attempts     integer NOT NULL DEFAULT 1,
  PRIMARY KEY (subscription, from_seq)
);

-- Where a cursor stands: every message with seq <= this was delivered or has a delivery row of its own.
CREATE FUNCTION rowcast.cursor_position(sub text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT least(c.leased_to, (SELECT min(l.from_seq) FROM rowcast.cursor_leases l WHERE l.subscription = c.subscription))
    FROM rowcast.cursors c WHERE c.subscription = sub
$$;

-- The settled horizon and the next ranges of the given cursors, with their messages. VOLATILE and PL/pgSQL on
-- purpose: each statement below takes a fresh snapshot, so the messages read after a horizon has settled include
-- every transaction that horizon waited for.
--
-- Horizon: seq is drawn inside an INSERT into rowcast.messages, which holds RowExclusiveLock on it until its
-- transaction ends. So after reading (1) H, the sequence's last value, and then (2) W, the transactions holding
-- that lock, every seq <= H is committed or rolled back once no transaction of W runs. The caller keeps the last
-- barrier (H, W) and passes it back; it settles on a later call (or at once when W is empty).
--
-- First row: kind 'horizon' (settled, barrier_seq, barrier_writers). Then per range, kind 'message' rows.
CREATE FUNCTION rowcast.lease_log_ranges(subs text[], counts int[], lease_ms int, owner text,
                                         settled bigint, barrier_seq bigint, barrier_writers text[])
RETURNS TABLE (kind text, subscription text, from_seq bigint, to_seq bigint, lease uuid, attempt int,
               writers text[], seq bigint, message_id uuid, topic text, subject text, body text, content_type text,
               attributes jsonb, attribute_types jsonb, created_at text, trace text, max_message_size int,
               large_messages text, claim_check_ttl_ms bigint)
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
     AND l.database = db;
  -- Nothing to hand out below the settled horizon while writers of the new messages still run (an idle chain: the
  -- router's next pass): wait a few milliseconds for them here rather than a round trip and a timer later.
  IF cardinality(w) > 0 AND NOT EXISTS (
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
    SELECT x.topic, x.cursor, x.sns_state INTO sub FROM rowcast.subscriptions x WHERE x.name = s;
    CONTINUE WHEN NOT FOUND;
    -- A range whose process died (its lease expired) is taken over whole.
    UPDATE rowcast.cursor_leases c
       SET lease = gen_random_uuid(), lease_owner = owner, expires_at = now() + lease_ms * interval '1 millisecond',
           attempts = c.attempts + 1
     WHERE (c.subscription, c.from_seq) = (
             SELECT x.subscription, x.from_seq FROM rowcast.cursor_leases x
              WHERE x.subscription = s AND x.expires_at <= now() ORDER BY x.from_seq LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING c.from_seq, c.to_seq, c.lease, c.attempts INTO f, t, tok, att;
    IF NOT FOUND THEN
      SELECT c.leased_to, c.drain_writers, c.until_seq INTO cur FROM rowcast.cursors c WHERE c.subscription = s FOR UPDATE;
      CONTINUE WHEN NOT FOUND;
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
      -- A subscription waiting for SNS's confirmation gets nothing published meanwhile, as with delivery rows.
      IF sub.sns_state <> 'confirmed' THEN
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
    RETURN QUERY
      SELECT 'message'::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
             -- MessageStructure 'json' (SNS API): the message for the subscription's protocol, else the default one.
             CASE WHEN m.protocol_bodies IS NULL THEN m.body
                  ELSE coalesce(m.protocol_bodies ->> (SELECT x.protocol FROM rowcast.subscriptions x WHERE x.name = s), m.body) END,
             m.content_type, m.attributes, m.attribute_types,
             to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), m.trace,
             coalesce(tp.max_message_size, 262144), coalesce(tp.large_messages, 'reject'), coalesce(tp.claim_check_ttl_ms, 86400000)
        FROM rowcast.messages m LEFT JOIN rowcast.topics tp ON tp.name = m.topic
       WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t
       ORDER BY m.seq;
  END LOOP;
END
$$;

-- What a cursor has not passed yet, for status and metrics: messages not yet leased, messages within leased ranges
-- (some may be delivered already: a range is passed when it completes whole), and the oldest of them. An upper
-- bound for a subscription with a filter policy, which is applied at delivery.
CREATE FUNCTION rowcast.cursor_backlog(sub text, OUT pending bigint, OUT in_flight bigint, OUT oldest timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT count(*) FILTER (WHERE m.seq > c.leased_to), count(*) FILTER (WHERE m.seq <= c.leased_to), min(m.created_at)
    FROM rowcast.cursors c JOIN rowcast.subscriptions s ON s.name = c.subscription
    JOIN rowcast.messages m ON m.topic = s.topic AND m.seq > (SELECT rowcast.cursor_position(sub))
         AND (c.until_seq IS NULL OR m.seq <= c.until_seq)
   WHERE c.subscription = sub
$$;

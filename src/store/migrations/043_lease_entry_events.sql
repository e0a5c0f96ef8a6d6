-- Issue 20: a segment entry's message is built by the process that leased it, not by the lease. Built in SQL
-- (rowcast.segment_messages), the body's json_build_object, the id's SHA-256 and their text cost the lease about
-- 12 µs per entry and delivery, more than routing saved by not copying it (docs/architecture.md, "Segments"). The
-- lease now returns an entry's event as columns of text, and the installation's id on its horizon row; the process
-- builds the id and body routing would have given a copy (src/model/event-message.ts), byte for byte as
-- rowcast.event_message_body does (test/e2e/log-segments.test.ts holds the two equal): a failed entry's message
-- row is still made in SQL, and its retries must send what its first attempt sent. Below, a range read from a
-- segment whose seqs are consecutive is its slice, and rowcast.log_seqs lets PostgreSQL inline segment_entries.
--
-- The returned columns change, so the function is dropped and created again from its definition, each patch's
-- anchor checked to occur once. FIFO ranges still read rowcast.log_messages (entries built in SQL): routing writes
-- segments only on standard topics, and a topic made FIFO later reads them only until its cursor passes them.

DO $migration$
DECLARE
  fn  constant regprocedure := 'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean)';
  def text := pg_get_functiondef(fn);
  -- A row without an event (a message row, the horizon) gives these NULL.
  no_event constant text := 'NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text[], NULL::text';
  patches constant text[][] := ARRAY[
    ARRAY['group_key text, held boolean)',
          'group_key text, held boolean, event_id bigint, event_op text, event_source text, event_capture text, '
          'event_schema text, event_table text, event_txid text, event_key text, event_before text, event_after text, '
          'event_changed text[], event_captured_at text)'],
    -- The installation's id, from which a message's id is derived: read once per lease, not once per entry.
    ARRAY['kind := ''horizon''; from_seq := settled; to_seq := h; writers := w;',
          'kind := ''horizon''; from_seq := settled; to_seq := h; writers := w;
  message_id := (SELECT i.id FROM rowcast.installation i);'],
    ARRAY['kind := ''message''; writers := NULL;',
          'kind := ''message''; writers := NULL; message_id := NULL;'],
    ARRAY['      RETURN QUERY
        SELECT ''message''::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
               -- MessageStructure ''json'' (SNS API): the message for the subscription''s protocol, else the default one.
               CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> sub.protocol, m.body) END,
               m.content_type, m.attributes, m.attribute_types,
               to_char(m.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), m.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean
          FROM rowcast.log_messages(sub.topic, f, t) m
         WHERE m.recipient IS NULL
         ORDER BY m.seq;',
          '      RETURN QUERY
        SELECT ''message''::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
               -- MessageStructure ''json'' (SNS API): the message for the subscription''s protocol, else the default one.
               CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> sub.protocol, m.body) END,
               m.content_type, m.attributes, m.attribute_types,
               to_char(m.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), m.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean, ' || no_event || '
          FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment
        UNION ALL
        -- A segment entry: its event, from which the process builds the message (id, body, attributes).
        SELECT ''message''::text, s, f, t, tok, att, NULL::text[], g.seq, NULL::uuid, sub.topic, c.subject, NULL::text,
               ''application/json''::text, NULL::jsonb, NULL::jsonb,
               to_char(g.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), e.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean,
               e.id, e.op, e.source::text, e.capture, e.schema_name, e.table_name, e.txid::text, e.key::text,
               e.before::text, e.after::text, e.changed,
               to_char(e.captured_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')
          FROM rowcast.segment_entries(sub.topic, f, t) g JOIN rowcast.events e ON e.id = g.event_id
          LEFT JOIN rowcast.captures c ON c.name = e.capture
         ORDER BY 8;'],
    ARRAY['sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, m.gk, g.held',
          'sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, m.gk, g.held, ' || no_event]];
  p text[];
BEGIN
  FOREACH p SLICE 1 IN ARRAY patches LOOP
    IF (length(def) - length(replace(def, p[1], ''))) / length(p[1]) <> 1 THEN
      RAISE EXCEPTION 'rowcast migration 043: rowcast.lease_log_ranges is not the function migration 042 made (at "%")', p[1];
    END IF;
    def := replace(def, p[1], p[2]);
  END LOOP;
  DROP FUNCTION rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean);
  EXECUTE def;
END
$migration$;

-- A range's entries from a segment whose seqs are consecutive (routing draws them topic by topic) are its array
-- slice: a lease of 20 entries from a segment of 400 unnested all 400 (and another segment's) to filter them.
CREATE OR REPLACE FUNCTION rowcast.segment_entries(tp text, f bigint, t bigint)
RETURNS TABLE (seq bigint, event_id bigint, created_at timestamptz) LANGUAGE sql STABLE AS $$
  SELECT u.seq, u.event_id, s.created_at
    FROM ((SELECT * FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > f AND s.last_seq <= t ORDER BY s.last_seq)
          UNION ALL
          (SELECT * FROM (SELECT * FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > t
                           ORDER BY s.last_seq LIMIT 1) n WHERE n.first_seq <= t)) s
    CROSS JOIN LATERAL (
      SELECT CASE WHEN dense THEN greatest(f - s.first_seq + 2, 1) ELSE 1 END AS lo,
             CASE WHEN dense THEN least(t - s.first_seq + 1, s.entries) ELSE s.entries END AS hi
        FROM (SELECT s.last_seq - s.first_seq + 1 = s.entries AS dense) d) b
    CROSS JOIN LATERAL unnest(s.seqs[b.lo:b.hi], s.event_ids[b.lo:b.hi]) AS u(seq, event_id)
   WHERE u.seq > f AND u.seq <= t
$$;

-- The first n seqs of a topic's log in (f, t] (migration 042), with segment_entries inlined and bounded by the n-th
-- entry itself where its segment's seqs are consecutive. In 042 the bound was a subquery argument, which kept
-- segment_entries from being inlined: PostgreSQL planned it on every call, segments or none (half a millisecond a
-- lease, 25 µs a delivery at fan-out to 10 on small ranges), and it unnested up to the end of the n-th entry's
-- segment. Per segment after f, in order: how many of its entries lie past f (exact for a consecutive segment; for
-- another, at least its last), so the first segment whose running count reaches n holds the n-th entry.
CREATE OR REPLACE FUNCTION rowcast.log_seqs(tp text, f bigint, t bigint, n int) RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
  SELECT x.seq FROM (
    (SELECT m.seq FROM rowcast.messages m
      WHERE m.topic = tp AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment
      ORDER BY m.seq LIMIT n)
    UNION ALL
    SELECT g.seq
      FROM (SELECT least(t, coalesce((
                     SELECT CASE WHEN c.dense THEN c.past + (n - c.before) ELSE c.last_seq END
                       FROM (SELECT k.*, coalesce(sum(k.k) OVER (ORDER BY k.last_seq ROWS UNBOUNDED PRECEDING)::bigint - k.k, 0) AS before
                               FROM (SELECT s.last_seq, s.last_seq - s.first_seq + 1 = s.entries AS dense,
                                            greatest(f, s.first_seq - 1) AS past,
                                            CASE WHEN s.last_seq - s.first_seq + 1 = s.entries THEN s.last_seq - greatest(f, s.first_seq - 1)
                                                 WHEN s.first_seq > f THEN s.entries ELSE 1 END AS k
                                       FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > f
                                      ORDER BY s.last_seq LIMIT n) k) c
                      WHERE c.before + c.k >= n ORDER BY c.last_seq LIMIT 1), t)) AS bound
              -- No segment past f: nothing to unnest, and segment_entries is not run.
             WHERE EXISTS (SELECT 1 FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > f)
            OFFSET 0) b
      CROSS JOIN LATERAL rowcast.segment_entries(tp, f, b.bound) g
  ) x ORDER BY x.seq LIMIT n
$$;

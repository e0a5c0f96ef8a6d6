-- Issue 20: a lease reads a range with a plan of the range's kind. Its one statement read message rows and segment
-- entries together (an append, a sort, the entries' joins), and starting that plan was most of a one-message lease's
-- cost in PostgreSQL (bench/HISTORY.md 2026-12-07 20:28). Most ranges hold one kind: message rows (what functions
-- and the SNS API publish) or segment entries (what routing appends). Two existence checks pick the plan; each
-- kind's query is written once, as an inlinable SQL function returning the lease's rows.

-- A row of rowcast.lease_log_ranges.
CREATE TYPE rowcast.lease_entry AS (
  kind text, subscription text, from_seq bigint, to_seq bigint, lease uuid, attempt integer, writers text[], seq bigint,
  message_id uuid, topic text, subject text, body text, content_type text, attributes jsonb, attribute_types jsonb,
  created_at text, trace text, max_message_size integer, large_messages text, claim_check_ttl_ms bigint, group_key text,
  held boolean, event_id bigint, event_op text, event_source text, event_capture text, event_schema text,
  event_table text, event_txid text, event_key text, event_before text, event_after text, event_changed text[],
  event_captured_at text);

-- The message rows of subscription sn's range (f, t] of topic tp, leased as tok (attempt att), as the lease returns them.
CREATE FUNCTION rowcast.range_message_rows(sn text, f bigint, t bigint, tok uuid, att int, tp text, proto text,
                                           max_size int, large text, ttl_ms bigint)
RETURNS SETOF rowcast.lease_entry LANGUAGE sql STABLE AS $$
  SELECT 'message'::text, sn, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
         -- MessageStructure 'json' (SNS API): the message for the subscription's protocol, else the default one.
         CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> proto, m.body) END,
         m.content_type, m.attributes, m.attribute_types,
         to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), m.trace,
         max_size, large, ttl_ms, NULL::text, NULL::boolean, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
         NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text[], NULL::text
    FROM rowcast.messages m
   WHERE m.topic = tp AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment
$$;

-- The segment entries of the same range, each with its event, from which the process builds the message (id, body,
-- attributes); an entry in the stretch (sa, sb] was returned with its event earlier in the lease call, and comes
-- without it.
CREATE FUNCTION rowcast.range_segment_entries(sn text, f bigint, t bigint, tok uuid, att int, tp text, max_size int,
                                              large text, ttl_ms bigint, sa bigint, sb bigint)
RETURNS SETOF rowcast.lease_entry LANGUAGE sql STABLE AS $$
  SELECT 'message'::text, sn, f, t, tok, att, NULL::text[], g.seq, NULL::uuid, tp, c.subject, NULL::text,
         'application/json'::text, NULL::jsonb, NULL::jsonb,
         to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), e.trace,
         max_size, large, ttl_ms, NULL::text, NULL::boolean,
         g.event_id, e.op, e.source::text, e.capture, e.schema_name, e.table_name, e.txid::text, e.key::text,
         e.before::text, e.after::text, e.changed,
         to_char(e.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    FROM rowcast.segment_entries(tp, f, t) g
    -- The gate is on the outer row alone, so PostgreSQL skips the index scan (OFFSET 0 keeps the subquery from
    -- being flattened).
    LEFT JOIN LATERAL (SELECT e.* FROM rowcast.events e
                        WHERE e.id = g.event_id AND NOT (g.seq > sa AND g.seq <= sb) OFFSET 0) e ON true
    LEFT JOIN rowcast.captures c ON c.name = e.capture
   WHERE e.id IS NOT NULL OR (g.seq > sa AND g.seq <= sb)
$$;

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean, text[], bigint[], bigint[], bigint)',
  ARRAY[
    ARRAY['  sb bigint;
', '  sb bigint;
  has_entries boolean;
'],
    ARRAY['      RETURN QUERY
        SELECT ''message''::text, s, f, t, tok, att, NULL::text[], m.seq, m.id, m.topic, m.subject,
               -- MessageStructure ''json'' (SNS API): the message for the subscription''s protocol, else the default one.
               CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> sub.protocol, m.body) END,
               m.content_type, m.attributes, m.attribute_types,
               to_char(m.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), m.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text[], NULL::text
          FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment
        UNION ALL
        -- A segment entry: its event, from which the process builds the message (id, body, attributes).
        SELECT ''message''::text, s, f, t, tok, att, NULL::text[], g.seq, NULL::uuid, sub.topic, c.subject, NULL::text,
               ''application/json''::text, NULL::jsonb, NULL::jsonb,
               to_char(g.created_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), e.trace,
               sub.max_message_size, sub.large_messages, sub.claim_check_ttl_ms, NULL::text, NULL::boolean,
               g.event_id, e.op, e.source::text, e.capture, e.schema_name, e.table_name, e.txid::text, e.key::text,
               e.before::text, e.after::text, e.changed,
               to_char(e.captured_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')
          FROM rowcast.segment_entries(sub.topic, f, t) g
          -- An entry returned with its event earlier in this call is not looked up again: the gate is on the
          -- outer row alone, so PostgreSQL skips the index scan (OFFSET 0 keeps the subquery from being flattened).
          LEFT JOIN LATERAL (SELECT e.* FROM rowcast.events e
                              WHERE e.id = g.event_id AND NOT (g.seq > sa AND g.seq <= sb) OFFSET 0) e ON true
          LEFT JOIN rowcast.captures c ON c.name = e.capture
         WHERE e.id IS NOT NULL OR (g.seq > sa AND g.seq <= sb)
         ORDER BY 8;
',
          '      -- One plan per kind of range: most hold message rows only (what functions and the SNS API publish) or segment
      -- entries only (what routing appends), and a plan of one kind starts in a fraction of the time of both.
      -- Segments do not overlap: only the first one past f can hold an entry of (f, t].
      has_entries := EXISTS (SELECT 1 FROM (SELECT g.first_seq FROM rowcast.log_segments g WHERE g.topic = sub.topic AND g.last_seq > f
                                             ORDER BY g.last_seq LIMIT 1) g WHERE g.first_seq <= t);
      IF NOT has_entries THEN
        RETURN QUERY SELECT * FROM rowcast.range_message_rows(s, f, t, tok, att, sub.topic, sub.protocol, sub.max_message_size,
                                                              sub.large_messages, sub.claim_check_ttl_ms) ORDER BY 8;
      ELSIF NOT EXISTS (SELECT 1 FROM rowcast.messages m
                         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment) THEN
        RETURN QUERY SELECT * FROM rowcast.range_segment_entries(s, f, t, tok, att, sub.topic, sub.max_message_size,
                                                                 sub.large_messages, sub.claim_check_ttl_ms, sa, sb) ORDER BY 8;
      ELSE
        RETURN QUERY
          SELECT * FROM rowcast.range_message_rows(s, f, t, tok, att, sub.topic, sub.protocol, sub.max_message_size,
                                                   sub.large_messages, sub.claim_check_ttl_ms)
          UNION ALL
          SELECT * FROM rowcast.range_segment_entries(s, f, t, tok, att, sub.topic, sub.max_message_size,
                                                      sub.large_messages, sub.claim_check_ttl_ms, sa, sb)
          ORDER BY 8;
      END IF;
']],
  '056');

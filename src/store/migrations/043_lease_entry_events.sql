-- Issue 20: a segment entry's message is built by the process that leased it, not by the lease. Built in SQL
-- (rowcast.segment_messages), the body's json_build_object, the id's SHA-256 and their text cost the lease about
-- 12 µs per entry and delivery, more than routing saved by not copying it (docs/architecture.md, "Segments"). The
-- lease now returns an entry's event as columns of text, and the installation's id on its horizon row; the process
-- builds the id and body routing would have given a copy (src/routing/event-message.ts), byte for byte as
-- rowcast.event_message_body does (test/e2e/log-segments.test.ts holds the two equal): a failed entry's message
-- row is still made in SQL, and its retries must send what its first attempt sent.
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


-- Issue 20, step 1 of docs/architecture.md "Next": a captured change written once, by its writer. Routing copied
-- every event into a message row (about 800 B of WAL per event with its index entries) although, on a topic whose
-- subscriptions all read through cursors, nothing refers to that row. There routing now writes, per topic and
-- batch, one segment: the seqs it drew and the events they are, in one row. Cursors read a topic's log as its
-- message rows and its segments' entries, by seq; a segment entry's message is built from its event at read time,
-- with the id routing would have given it. A message row is made from a segment entry only where something must
-- refer to one (a failed or handed-back delivery's row): `from_segment`, which the lease leaves out, as it reads
-- the entry.
--
-- Routing writes segments only while `installation.log_segments` is on: off by default until the tests and the
-- fault suite pass with it on (docs/architecture.md, "Segments").

ALTER TABLE rowcast.installation ADD COLUMN log_segments boolean NOT NULL DEFAULT false;
ALTER TABLE rowcast.messages ADD COLUMN from_segment boolean NOT NULL DEFAULT false;

CREATE TABLE rowcast.log_segments (
  topic      text        NOT NULL,
  -- Routing is one process at a time and draws a batch's seqs in one statement: a topic's segments never overlap.
  first_seq  bigint      NOT NULL,
  last_seq   bigint      NOT NULL,
  seqs       bigint[]    NOT NULL,
  event_ids  bigint[]    NOT NULL,
  entries    int         NOT NULL,
  -- Which events it holds, for retention (one GiST entry per segment, none per event).
  events     int8range   NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, last_seq)
);
CREATE INDEX log_segments_events ON rowcast.log_segments USING gist (events);

-- A captured event's message, as routing makes it (one definition: a message built at read time has the bytes a
-- routed copy of it had).
CREATE FUNCTION rowcast.event_message_body(e rowcast.events) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
           'id', e.id::text,
           'op', e.op,
           -- Events of other sources (MySQL) carry their own: kind, server, database, table, binlog position.
           'source', coalesce(e.source::json, json_build_object('capture', e.capture, 'schema', e.schema_name, 'table', e.table_name, 'txid', e.txid::text)),
           'key', e.key,
           'before', e.before,
           'after', e.after,
           'changed', e.changed,
           'captured_at', to_char(e.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'trace', e.trace)::text
$$;

CREATE FUNCTION rowcast.event_message_attributes(e rowcast.events) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('op', e.op, 'schema', e.schema_name, 'table', e.table_name, 'capture', e.capture)
$$;

-- The entries (seq, event) of a topic's segments with f < seq <= t, in segment order. Two index range scans: the
-- segments ending in (f, t], and the one after them if it begins by t (segments never overlap).
CREATE FUNCTION rowcast.segment_entries(tp text, f bigint, t bigint)
RETURNS TABLE (seq bigint, event_id bigint, created_at timestamptz) LANGUAGE sql STABLE AS $$
  SELECT u.seq, u.event_id, s.created_at
    FROM ((SELECT * FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > f AND s.last_seq <= t ORDER BY s.last_seq)
          UNION ALL
          (SELECT * FROM (SELECT * FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > t
                           ORDER BY s.last_seq LIMIT 1) n WHERE n.first_seq <= t)) s,
         unnest(s.seqs, s.event_ids) AS u(seq, event_id)
   WHERE u.seq > f AND u.seq <= t
$$;

-- A topic's segment entries in (f, t] as message rows, each built from its event with the id, body, attributes and
-- time routing would have given its copy, and `from_segment`. Returns rowcast.messages' row type, so readers of the
-- table read the log alike (a column added to messages must be added here too).
CREATE FUNCTION rowcast.segment_messages(tp text, f bigint, t bigint) RETURNS SETOF rowcast.messages
LANGUAGE sql STABLE AS $$
  SELECT rowcast.derived_uuid((SELECT i.id FROM rowcast.installation i), 'message/' || e.id), tp, c.subject,
         rowcast.event_message_body(e), 'application/json'::text, rowcast.event_message_attributes(e), e.key::text, e.id,
         e.trace, g.created_at, g.seq, NULL::text, NULL::jsonb, NULL::jsonb, NULL::text, true
    FROM rowcast.segment_entries(tp, f, t) g JOIN rowcast.events e ON e.id = g.event_id
    LEFT JOIN rowcast.captures c ON c.name = e.capture
$$;

-- A topic's log in (f, t]: its message rows and its segments' entries. A row made from an entry (from_segment) is
-- left out: the entry stands for it.
CREATE FUNCTION rowcast.log_messages(tp text, f bigint, t bigint) RETURNS SETOF rowcast.messages
LANGUAGE sql STABLE AS $$
  SELECT m.* FROM rowcast.messages m WHERE m.topic = tp AND m.seq > f AND m.seq <= t AND NOT m.from_segment
  UNION ALL
  SELECT * FROM rowcast.segment_messages(tp, f, t)
$$;

-- The first n seqs of a topic's log in (f, t], leaving out messages for one subscription only (recipient, migration
-- 038): its message rows' by index, and its segments' entries, unnesting only the segments that can hold them. A
-- segment holds at least one seq of the range if it ends in it, so the (n+1)-th segment after f ends at or past the
-- n-th seq (the first may begin at or before f: it is not counted), or an earlier one when `entries` say so.
CREATE FUNCTION rowcast.log_seqs(tp text, f bigint, t bigint, n int) RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
  SELECT x.seq FROM (
    (SELECT m.seq FROM rowcast.messages m
      WHERE m.topic = tp AND m.seq > f AND m.seq <= t AND m.recipient IS NULL AND NOT m.from_segment
      ORDER BY m.seq LIMIT n)
    UNION ALL
    SELECT g.seq FROM rowcast.segment_entries(tp, f, least(t, (
      SELECT b.last_seq
        FROM (SELECT s.last_seq, sum(s.entries) OVER w - first_value(s.entries) OVER w AS past_first
                FROM (SELECT s.last_seq, s.entries FROM rowcast.log_segments s WHERE s.topic = tp AND s.last_seq > f
                       ORDER BY s.last_seq LIMIT n + 1) s
              WINDOW w AS (ORDER BY s.last_seq)) b
       WHERE b.past_first >= n ORDER BY b.last_seq LIMIT 1))) g
  ) x ORDER BY x.seq LIMIT n
$$;

-- Message rows for segment entries of (f, t] with these ids, where none exists yet: a delivery row refers to its
-- message. The row keeps the entry's seq and time, and says it came from a segment.
CREATE FUNCTION rowcast.materialize_segment_messages(tp text, f bigint, t bigint, ids uuid[]) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO rowcast.messages (id, topic, subject, body, content_type, attributes, group_key, event_id, trace, created_at, seq, from_segment)
  OVERRIDING SYSTEM VALUE
  SELECT m.id, m.topic, m.subject, m.body, m.content_type, m.attributes, m.group_key, m.event_id, m.trace, m.created_at, m.seq, true
    FROM rowcast.segment_messages(tp, f, t) m
   WHERE m.id = ANY (ids)
  ON CONFLICT (id) DO NOTHING
$$;

-- The lease function reads segments beside message rows: its writers are the log's writers (routing holds the lock
-- on log_segments while it writes one), the settle wait looks at both, a new range is counted by log_seqs, and a
-- range is read from log_messages (FIFO ranges too: a topic made FIFO may have segments). Patched from its
-- definition, each anchor checked to occur once.
DO $migration$
DECLARE
  fn  constant regprocedure := 'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean)';
  def text := pg_get_functiondef(fn);
  patches constant text[][] := ARRAY[
    ARRAY['l.relation = ''rowcast.messages''::regclass',
          'l.relation IN (''rowcast.messages''::regclass, ''rowcast.log_segments''::regclass)'],
    ARRAY['AND EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = x.topic AND m.seq > c.leased_to AND m.seq <= settled))',
          'AND (EXISTS (SELECT 1 FROM rowcast.messages m WHERE m.topic = x.topic AND m.seq > c.leased_to AND m.seq <= settled)
                 OR EXISTS (SELECT 1 FROM rowcast.segment_entries(x.topic, c.leased_to, settled))))'],
    ARRAY['SELECT count(*), max(y.seq) INTO found_n, last_seq
        FROM (SELECT m.seq FROM rowcast.messages m WHERE m.topic = sub.topic AND m.seq > cur.leased_to AND m.seq <= stop_at AND m.recipient IS NULL
               ORDER BY m.seq LIMIT n) y;',
          'SELECT count(*), max(y.seq) INTO found_n, last_seq FROM rowcast.log_seqs(sub.topic, cur.leased_to, stop_at, n) y(seq);'],
    ARRAY['FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t AND m.recipient IS NULL
         ORDER BY m.seq;',
          'FROM rowcast.log_messages(sub.topic, f, t) m
         WHERE m.recipient IS NULL
         ORDER BY m.seq;'],
    ARRAY['SELECT m.*, coalesce(m.group_key, '''') AS gk FROM rowcast.messages m
         WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t AND m.recipient IS NULL),',
          'SELECT m.*, coalesce(m.group_key, '''') AS gk FROM rowcast.log_messages(sub.topic, f, t) m
         WHERE m.recipient IS NULL),'],
    -- A claim-checked body is served from its message row (GET /messages/:id/body): an entry over the size limit of
    -- a topic made claim-check after its segments were written gets one before a link to it is sent.
    ARRAY['    IF NOT sub.fifo THEN
      RETURN QUERY',
          '    IF sub.large_messages = ''claim-check'' THEN
      PERFORM rowcast.materialize_segment_messages(sub.topic, f, t, ARRAY(
        SELECT m.id FROM rowcast.segment_messages(sub.topic, f, t) m WHERE octet_length(m.body) > sub.max_message_size));
    END IF;
    IF NOT sub.fifo THEN
      RETURN QUERY']];
  p text[];
BEGIN
  FOREACH p SLICE 1 IN ARRAY patches LOOP
    IF (length(def) - length(replace(def, p[1], ''))) / length(p[1]) <> 1 THEN
      RAISE EXCEPTION 'rowcast migration 042: rowcast.lease_log_ranges is not the function migration 038 made (at "%")', p[1];
    END IF;
    def := replace(def, p[1], p[2]);
  END LOOP;
  EXECUTE def;
END
$migration$;

-- What a cursor has not passed, for status and metrics, counts its segments' entries too.
CREATE OR REPLACE FUNCTION rowcast.cursor_backlog(sub text, OUT pending bigint, OUT in_flight bigint, OUT oldest timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT count(*) FILTER (WHERE m.seq > c.leased_to), count(*) FILTER (WHERE m.seq <= c.leased_to), min(m.created_at)
    FROM rowcast.cursors c JOIN rowcast.subscriptions s ON s.name = c.subscription
    CROSS JOIN LATERAL (SELECT rowcast.cursor_position(sub) AS p) p
    CROSS JOIN LATERAL (
      SELECT m.seq, m.created_at FROM rowcast.messages m
       WHERE m.topic = s.topic AND m.seq > p.p AND (c.until_seq IS NULL OR m.seq <= c.until_seq) AND NOT m.from_segment
      UNION ALL
      SELECT g.seq, g.created_at FROM rowcast.segment_entries(s.topic, p.p, coalesce(c.until_seq, 9223372036854775807)) g) m
   WHERE c.subscription = sub
$$;

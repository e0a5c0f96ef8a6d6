-- What a cursor has not passed (status, the dashboard's overview, metrics), counted without unnesting what it need
-- not: with segments on by default (migration 044), 042's count unnested every pending segment on every poll. A
-- segment wholly past the cursor's position, and wholly on one side of what it has leased, counts by its `entries`;
-- only a segment that straddles one of those seqs (or the end of a cursor draining after a switch to rows) is
-- unnested.
CREATE OR REPLACE FUNCTION rowcast.cursor_backlog(sub text, OUT pending bigint, OUT in_flight bigint, OUT oldest timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(x.pending), 0)::bigint, coalesce(sum(x.in_flight), 0)::bigint, min(x.oldest)
    FROM rowcast.cursors c JOIN rowcast.subscriptions s ON s.name = c.subscription
    CROSS JOIN LATERAL (SELECT rowcast.cursor_position(sub) AS p, coalesce(c.until_seq, 9223372036854775807) AS u) b
    CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE m.seq > c.leased_to) AS pending, count(*) FILTER (WHERE m.seq <= c.leased_to) AS in_flight,
             min(m.created_at) AS oldest
        FROM rowcast.messages m
       WHERE m.topic = s.topic AND m.seq > b.p AND m.seq <= b.u AND NOT m.from_segment
      UNION ALL
      SELECT sum(g.entries) FILTER (WHERE g.first_seq > c.leased_to), sum(g.entries) FILTER (WHERE g.last_seq <= c.leased_to),
             min(g.created_at)
        FROM rowcast.log_segments g
       WHERE g.topic = s.topic AND g.last_seq > b.p AND g.first_seq > b.p AND g.last_seq <= b.u
         AND (g.first_seq > c.leased_to OR g.last_seq <= c.leased_to)
      UNION ALL
      SELECT count(*) FILTER (WHERE u.seq > c.leased_to), count(*) FILTER (WHERE u.seq <= c.leased_to), min(g.created_at)
        FROM rowcast.log_segments g CROSS JOIN LATERAL unnest(g.seqs) u(seq)
       WHERE g.topic = s.topic AND g.last_seq > b.p AND g.first_seq <= b.u
         AND NOT (g.first_seq > b.p AND g.last_seq <= b.u AND (g.first_seq > c.leased_to OR g.last_seq <= c.leased_to))
         AND u.seq > b.p AND u.seq <= b.u) x
   WHERE c.subscription = sub
$$;

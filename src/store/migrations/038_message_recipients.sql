-- A message sent to one subscription only (the test message of POST /api/subscriptions/:name/test) names it in
-- `recipient` and has its delivery row. Cursors read every message of their topic, so until now the other cursor
-- subscriptions of the topic sent it too (and its recipient, reading through a cursor, twice). The lease now leaves
-- such messages out: a range may span them, as it spans a filtered-out message, but they are neither counted into
-- its size nor returned, so every range it hands out still holds a message to send.

ALTER TABLE rowcast.messages ADD COLUMN recipient text;

-- The lease function as migration 037 made it, with the condition added where it counts a new range's messages and
-- where it reads a range (its standard and its FIFO branch): rewritten from its definition, not copied a fourth time.
DO $migration$
DECLARE
  fn    constant regprocedure := 'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean)';
  count constant text := 'WHERE m.topic = sub.topic AND m.seq > cur.leased_to AND m.seq <= stop_at';
  range constant text := 'WHERE m.topic = sub.topic AND m.seq > f AND m.seq <= t';
  def   text := pg_get_functiondef(fn);
BEGIN
  IF (length(def) - length(replace(def, count, ''))) / length(count) <> 1
     OR (length(def) - length(replace(def, range, ''))) / length(range) <> 2 THEN
    RAISE EXCEPTION 'rowcast migration 038: rowcast.lease_log_ranges is not the function migration 037 made';
  END IF;
  def := replace(def, count, count || ' AND m.recipient IS NULL');
  EXECUTE replace(def, range, range || ' AND m.recipient IS NULL');
END
$migration$;

-- Issue 20: at fan-out, a topic's cursors mostly lease in different calls (they drift apart), so a call's own
-- sharing (migration 046) returned an entry's event once per call but still about once per cursor in all. The
-- process now tells the lease the stretches of seqs (lo, hi] of each topic whose entries' messages it holds
-- (known_topics, known_lo, known_hi, a topic once per stretch; src/store/log-leases.ts): an entry in them comes
-- back with its event id alone, as one an earlier range of the same call returned. Each range is read against the
-- stretch that overlaps it most, among those told and those the call returned before it. Callers that hold nothing
-- (routing's appending lease) pass nothing.

SELECT rowcast.patch_function(
  'rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean)',
  ARRAY[
    ARRAY['appending boolean)',
          'appending boolean, known_topics text[] DEFAULT ''{}''::text[], known_lo bigint[] DEFAULT ''{}''::bigint[], known_hi bigint[] DEFAULT ''{}''::bigint[])'],
    ARRAY['  -- Per topic, the seqs (lo, hi] whose entries this call returned with their events (migration 046).
  shared_topics text[] := ''{}'';
  shared_lo bigint[] := ''{}'';
  shared_hi bigint[] := ''{}'';',
          '  -- Stretches of seqs (lo, hi] of a topic whose entries the caller holds the messages of, or this call returned
  -- with their events (migrations 046, 047).
  shared_topics text[] := known_topics;
  shared_lo bigint[] := known_lo;
  shared_hi bigint[] := known_hi;'],
    ARRAY['      si := array_position(shared_topics, sub.topic);
      sa := coalesce(shared_lo[si], 0);
      sb := coalesce(shared_hi[si], 0);',
          '      sa := NULL;
      sb := NULL;
      SELECT k.lo, k.hi INTO sa, sb FROM unnest(shared_topics, shared_lo, shared_hi) k(topic, lo, hi)
       WHERE k.topic = sub.topic AND k.lo < t AND k.hi > f
       ORDER BY least(k.hi, t) - greatest(k.lo, f) DESC LIMIT 1;
      -- None: an empty stretch (a NULL would drop every entry below).
      sa := coalesce(sa, 0);
      sb := coalesce(sb, 0);'],
    ARRAY['      IF si IS NULL THEN
        shared_topics := shared_topics || sub.topic;
        shared_lo := shared_lo || f;
        shared_hi := shared_hi || t;
      ELSIF f <= sb AND t >= sa THEN
        shared_lo[si] := least(sa, f);
        shared_hi[si] := greatest(sb, t);
      ELSE
        shared_lo[si] := f;
        shared_hi[si] := t;
      END IF;',
          '      shared_topics := shared_topics || sub.topic;
      shared_lo := shared_lo || f;
      shared_hi := shared_hi || t;']],
  '047');
DROP FUNCTION rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[], boolean);

-- The seven-argument form migration 035 kept for the callers of its time returns 22 of the function's 34 columns
-- since migration 043, so every call of it fails: nothing calls it, and it goes.
DROP FUNCTION rowcast.lease_log_ranges(text[], int[], int, text, bigint, bigint, text[]);

-- Derived ids (migration 010) cost a nested statement per routed event (~5 µs, seen in pg_stat_statements):
-- PostgreSQL inlines an IMMUTABLE SQL function only if its body is immutable too, and convert_to is STABLE; nor
-- does it inline one whose repeated argument holds a sub-select (uuid_v8 used its argument three times, and the
-- routing statement passes the installation id as one). STABLE, one expression, each argument used once: inlined.
-- The variant nibble is now always 8 (RFC 9562 allows 8–b), so a UUIDv8 keeps 120 bits of the hash.
DROP FUNCTION rowcast.derived_uuid(uuid, text);
CREATE FUNCTION rowcast.derived_uuid(installation uuid, name text) RETURNS uuid LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
  SELECT overlay(overlay(left(encode(sha256(convert_to(installation::text || '/' || name, 'UTF8')), 'hex'), 32) PLACING '8' FROM 13) PLACING '8' FROM 17)::uuid
$$;
DROP FUNCTION rowcast.uuid_v8(bytea);

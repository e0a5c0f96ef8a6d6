-- Routing commits without waiting for its WAL flush. What makes that safe: the ids of what routing creates from
-- an event (its message, or its function invocation) are derived from the event's id, so a routing that a
-- PostgreSQL crash lost before its flush is done again with the same ids; a subscriber that already received the
-- message sees the same webhook-id / MessageId again (at least once, deduplicable), never a second message. The event
-- itself was flushed with the writer's commit; and whatever routing leased is finished by a synchronous commit (a
-- delivery's or invocation's result), which flushes the routing before it.

-- One row: this database's namespace for derived ids, so two installations never derive the same id.
CREATE TABLE rowcast.installation (
  id  uuid NOT NULL DEFAULT gen_random_uuid(),
  one boolean PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO rowcast.installation DEFAULT VALUES;

-- A UUIDv8 (RFC 9562) from the first 16 bytes of SHA-256 over the installation's id and a name
-- ('message/<event id>', 'invocation/<event id>'). Single expressions, so the planner inlines both.
CREATE FUNCTION rowcast.uuid_v8(h bytea) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT encode(set_byte(set_byte(substring(h FROM 1 FOR 16), 6, (get_byte(h, 6) & 15) | 128), 8, (get_byte(h, 8) & 63) | 128), 'hex')::uuid
$$;
CREATE FUNCTION rowcast.derived_uuid(installation uuid, name text) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT rowcast.uuid_v8(sha256(convert_to(installation::text || '/' || name, 'UTF8')))
$$;

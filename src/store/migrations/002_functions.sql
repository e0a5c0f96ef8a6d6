-- Functions (the reference's Lambda step): invocations queued by captures, by SQL (aws_lambda.invoke) or by the
-- library API, run by `rowcast start` with retries, timeouts, concurrency limits and an on-failure topic.

CREATE TABLE rowcast.functions (
  name       text PRIMARY KEY,
  -- attempts, backoff, max event age, timeout, concurrency, on-failure topic (see the config schema)
  settings   jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rowcast.invocations (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  function     text NOT NULL,
  payload      text NOT NULL,
  -- capture, sql, api or subscription
  source       text NOT NULL,
  event_id     bigint,
  message_id   uuid,
  client_context jsonb,
  trace        text,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'in_flight', 'done', 'failed')),
  attempts     integer NOT NULL DEFAULT 0,
  -- pending: next attempt time; in_flight: lease expiry (as for deliveries)
  available_at timestamptz NOT NULL DEFAULT now(),
  lease_owner  text,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at   timestamptz,
  finished_at  timestamptz,
  duration_ms  integer,
  last_error   text,
  result       text,
  -- ids of the messages the successful attempt published
  published    uuid[]
);
CREATE INDEX invocations_claim ON rowcast.invocations (function, available_at) WHERE state IN ('pending', 'in_flight');
CREATE INDEX invocations_created_at ON rowcast.invocations USING brin (created_at);
-- A message delivered to a function subscription twice (at-least-once) queues one invocation.
CREATE UNIQUE INDEX invocations_message ON rowcast.invocations (message_id, function) WHERE message_id IS NOT NULL;

-- A capture targets a topic or a function.
ALTER TABLE rowcast.events ALTER COLUMN topic DROP NOT NULL, ADD COLUMN function text,
  ADD CONSTRAINT events_one_target CHECK ((topic IS NULL) <> (function IS NULL));
ALTER TABLE rowcast.captures ALTER COLUMN topic DROP NOT NULL, ADD COLUMN function text;

-- Queues an invocation in the caller's transaction (a rollback invokes nothing) and wakes a sleeping dispatcher.
CREATE FUNCTION rowcast.invoke(function_name text, payload text, source text DEFAULT 'sql', client_context jsonb DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  id uuid;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM rowcast.functions f WHERE f.name = function_name) THEN
    RAISE EXCEPTION 'rowcast: function "%" does not exist', function_name
      USING ERRCODE = 'undefined_function',
            HINT = 'Declare it under "functions" in the rowcast config and run rowcast apply; known: '
                   || coalesce((SELECT string_agg(f.name, ', ' ORDER BY f.name) FROM rowcast.functions f), 'none') || '.';
  END IF;
  INSERT INTO rowcast.invocations (function, payload, source, client_context, trace)
  VALUES (function_name, payload, source, client_context, NULLIF(current_setting('rowcast.traceparent', true), ''))
  RETURNING invocations.id INTO id;
  IF EXISTS (SELECT 1 FROM rowcast.dispatchers WHERE sleeping) THEN
    PERFORM pg_notify('rowcast', '');
  END IF;
  RETURN id;
END
$$;

-- rowcast.invoke's NOTIFY says what it announces: payload 'invocations' (queue/listener.ts), on which the processes
-- wake their function workers directly. Before, every routing pass that followed any NOTIFY woke them, in case an
-- invocation queued by SQL was waiting: on a busy capture, one empty claim per function and event. A process of the
-- previous version still wakes its router (and so its function worker) on this NOTIFY, whatever the payload.

CREATE OR REPLACE FUNCTION rowcast.invoke(function_name text, payload text, source text DEFAULT 'sql', client_context jsonb DEFAULT NULL)
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
    PERFORM pg_notify('rowcast', 'invocations');
  END IF;
  RETURN id;
END
$$;

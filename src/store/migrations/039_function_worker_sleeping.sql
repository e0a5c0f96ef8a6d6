-- Function workers have a sleeping flag of their own. rowcast.invoke (which aws_lambda.invoke and MySQL's
-- lambda_async call) NOTIFYs only while someone sleeps, and until now that meant a router: under capture load no
-- router sleeps, so an invocation queued by SQL waited for the function worker's poll (a second by default). The
-- worker sets the flag before it sleeps and clears it under load, as the router does its own
-- (functions/function-worker.ts); capture triggers still look at the router's flag only.

ALTER TABLE rowcast.dispatchers ADD COLUMN functions_sleeping boolean NOT NULL DEFAULT false;

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
  -- The insert comes before the flag is read: a worker that set its flag and then sees no writer holding
  -- rowcast.invocations knows every invocation that missed the flag is visible to its next claim.
  INSERT INTO rowcast.invocations (function, payload, source, client_context, trace)
  VALUES (function_name, payload, source, client_context, NULLIF(current_setting('rowcast.traceparent', true), ''))
  RETURNING invocations.id INTO id;
  IF EXISTS (SELECT 1 FROM rowcast.dispatchers WHERE sleeping OR functions_sleeping) THEN
    PERFORM pg_notify('rowcast', 'invocations');
  END IF;
  RETURN id;
END
$$;

-- Sources beyond the store (issue 19): MySQL/MariaDB captures, read from the binary log by one rowcast process.
-- Their events say where they came from (kind, server, database, table, binlog position) in `source`; the
-- store's own captures leave it NULL and keep the shape they had.
ALTER TABLE rowcast.events ADD COLUMN source jsonb;

-- Per source, the binlog position up to which its events are written, updated in the same transaction as
-- those events: a reader that crashes resumes from here, without loss and without writing an event twice.
-- `rowcast apply` records the server's current position when a source gets its first capture.
CREATE TABLE rowcast.source_progress (
  source     text PRIMARY KEY,
  position   jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- lambda_async(arn, payload) called in MySQL: the reader hands each call read from the binlog to the path of
-- aws_lambda.invoke(…, 'Event'), one at a time so that one bad call (an unknown function, a malformed ARN) is
-- returned as a problem instead of failing the whole batch; the rest are queued in the caller's transaction.
CREATE FUNCTION rowcast.mysql_lambda_invoke(arns text[], payloads text[]) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  problems text[] := '{}';
BEGIN
  FOR i IN 1 .. coalesce(array_length(arns, 1), 0) LOOP
    BEGIN
      PERFORM rowcast.aws_lambda_invoke(arns[i], payloads[i], 'Event', 'None', NULL);
    EXCEPTION WHEN OTHERS THEN
      problems := problems || (arns[i] || ': ' || SQLERRM);
    END;
  END LOOP;
  RETURN problems;
END
$$;
REVOKE ALL ON FUNCTION rowcast.mysql_lambda_invoke(text[], text[]) FROM PUBLIC;

-- Function workers have a sleeping flag of their own. rowcast.invoke (which aws_lambda.invoke and MySQL's
-- lambda_async call) NOTIFYs only while someone sleeps, and until now that meant a router: under capture load no
-- router sleeps, so an invocation queued by SQL waited for the function worker's poll (a second by default). The
-- worker sets the flag before it sleeps and clears it under load, as the router does its own
-- (queue/sleeping-flag.ts); capture triggers still look at the routers' flags only.

ALTER TABLE rowcast.dispatchers ADD COLUMN functions_sleeping boolean NOT NULL DEFAULT false;

-- rowcast.invoke as migration 036 made it, reading either flag: rewritten from its definition, not copied a third
-- time. It inserts before it reads the flags, so a worker that set its flag and then sees no writer holding
-- rowcast.invocations knows every invocation that missed the flag is visible to its next claim.
DO $migration$
DECLARE
  fn    constant regprocedure := 'rowcast.invoke(text, text, text, jsonb)';
  flag  constant text := 'FROM rowcast.dispatchers WHERE sleeping)';
  def   text := pg_get_functiondef(fn);
BEGIN
  IF (length(def) - length(replace(def, flag, ''))) / length(flag) <> 1 THEN
    RAISE EXCEPTION 'rowcast migration 039: rowcast.invoke is not the function migration 036 made';
  END IF;
  EXECUTE replace(def, flag, 'FROM rowcast.dispatchers WHERE sleeping OR functions_sleeping)');
END
$migration$;

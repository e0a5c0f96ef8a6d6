-- Application roles (issue 14): the role that writes a captured table, or calls aws_lambda.invoke, has its table
-- rights and USAGE on aws_commons and aws_lambda (as with the RDS extension), and nothing on schema rowcast.
--
-- aws_lambda.invoke is a SQL function, so its body ran as the caller and could not reach
-- rowcast.aws_lambda_invoke ("permission denied for schema rowcast"): the four overloads now run as their owner,
-- with a pinned search_path (a caller's pg_temp or schemas cannot stand in for pg_catalog's names).
ALTER FUNCTION aws_lambda.invoke(text, json, text, text, text, json, varchar) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aws_lambda.invoke(aws_commons._lambda_function_arn_1, json, text, text, json, varchar) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aws_lambda.invoke(text, jsonb, text, text, text, jsonb, varchar) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aws_lambda.invoke(aws_commons._lambda_function_arn_1, jsonb, text, text, jsonb, varchar) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- The helpers behind them are only called through them, as the owner.
REVOKE ALL ON FUNCTION rowcast.aws_lambda_invoke(text, text, text, text, json) FROM PUBLIC;
REVOKE ALL ON FUNCTION rowcast.lambda_function_name(text) FROM PUBLIC;

-- Capture functions run as their owner wherever a trigger calls them (PostgreSQL checks EXECUTE when a trigger is
-- created, not when it fires): open to PUBLIC, a role with USAGE on rowcast could attach one to a table of its own
-- and write that table's rows as the capture's events. `rowcast apply` installs them without EXECUTE for PUBLIC;
-- this closes the ones installed before. Of the SECURITY DEFINER functions, only rowcast.invoke stays public: it
-- queues invocations of declared functions, which is what it is for.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_proc p
            WHERE p.pronamespace = 'rowcast'::regnamespace AND p.prosecdef AND p.oid <> 'rowcast.invoke(text, text, text, jsonb)'::regprocedure LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;

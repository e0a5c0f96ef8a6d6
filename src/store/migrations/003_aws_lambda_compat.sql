-- The SQL surface of the RDS/Aurora aws_lambda extension, so that trigger functions written for it (such as the
-- reference's my_db_trigger_function) run unchanged: 'Event' queues an invocation of the rowcast function named
-- by the ARN, in the caller's transaction. Roles other than the owner need:
--   GRANT USAGE ON SCHEMA aws_commons, aws_lambda TO app_role;

CREATE SCHEMA IF NOT EXISTS aws_commons;
CREATE SCHEMA IF NOT EXISTS aws_lambda;

CREATE TYPE aws_commons._lambda_function_arn_1 AS (function_name text, region text);

CREATE FUNCTION aws_commons.create_lambda_function_arn(function_name text, region text DEFAULT NULL)
RETURNS aws_commons._lambda_function_arn_1 LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW($1, $2)::aws_commons._lambda_function_arn_1
$$;

-- "arn:aws:lambda:us-east-2:123456789012:function:name[:qualifier]", "123456789012:function:name", "name[:qualifier]"
CREATE FUNCTION rowcast.lambda_function_name(function_name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  parts text[];
BEGIN
  IF function_name IS NULL OR btrim(function_name) = '' THEN
    RAISE EXCEPTION 'rowcast: aws_lambda.invoke needs a function name or ARN' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF function_name LIKE 'arn:%' THEN
    parts := string_to_array(function_name, ':');
    IF coalesce(array_length(parts, 1), 0) NOT IN (7, 8) OR parts[3] <> 'lambda' OR parts[6] <> 'function' OR btrim(parts[7]) = '' THEN
      RAISE EXCEPTION 'rowcast: "%" is not a Lambda function ARN', function_name
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Write arn:aws:lambda:<region>:<account>:function:<name>, or just the function name.';
    END IF;
    RETURN parts[7];
  END IF;
  IF function_name LIKE '%:function:%' THEN
    RETURN split_part(split_part(function_name, ':function:', 2), ':', 1);
  END IF;
  RETURN split_part(function_name, ':', 1);
END
$$;

CREATE FUNCTION rowcast.aws_lambda_invoke(function_name text, payload text, invocation_type text, log_type text, context json,
  OUT status_code integer, OUT response text, OUT executed_version text, OUT log_result text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  fn text := rowcast.lambda_function_name(function_name);
BEGIN
  IF log_type IS DISTINCT FROM 'None' AND log_type IS DISTINCT FROM 'Tail' THEN
    RAISE EXCEPTION 'rowcast: log_type must be ''None'' or ''Tail'', not %', coalesce('''' || log_type || '''', 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF invocation_type = 'Event' THEN
    PERFORM rowcast.invoke(fn, coalesce(payload, 'null'), 'sql', context::jsonb);
    status_code := 202;
  ELSIF invocation_type = 'DryRun' THEN
    IF NOT EXISTS (SELECT 1 FROM rowcast.functions f WHERE f.name = fn) THEN
      RAISE EXCEPTION 'rowcast: function "%" does not exist', fn
        USING ERRCODE = 'undefined_function', HINT = 'Declare it under "functions" in the rowcast config and run rowcast apply.';
    END IF;
    status_code := 204;
  ELSIF invocation_type = 'RequestResponse' THEN
    RAISE EXCEPTION 'rowcast: invocation_type ''RequestResponse'' is not supported: rowcast runs functions after the calling transaction commits, so it cannot return their result inside it'
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Pass ''Event'' (asynchronous: queued with the transaction, retried, never lost), or ''DryRun'' to check that the function exists.';
  ELSE
    RAISE EXCEPTION 'rowcast: invocation_type must be ''Event'', ''RequestResponse'' or ''DryRun'', not %', coalesce('''' || invocation_type || '''', 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  executed_version := '$LATEST';
END
$$;

-- The four overloads of the extension (text name or ARN type; json or jsonb payload), same parameters and OUT columns.
CREATE FUNCTION aws_lambda.invoke(IN function_name text, IN payload json, IN region text DEFAULT NULL,
  IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None', IN context json DEFAULT NULL,
  IN qualifier varchar(128) DEFAULT NULL,
  OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text)
LANGUAGE sql AS $$ SELECT r.status_code, r.response::json, r.executed_version, r.log_result FROM rowcast.aws_lambda_invoke($1, $2::text, $4, $5, $6) r $$;

CREATE FUNCTION aws_lambda.invoke(IN function_name aws_commons._lambda_function_arn_1, IN payload json,
  IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None', IN context json DEFAULT NULL,
  IN qualifier varchar(128) DEFAULT NULL,
  OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text)
LANGUAGE sql AS $$ SELECT r.status_code, r.response::json, r.executed_version, r.log_result FROM rowcast.aws_lambda_invoke(($1).function_name, $2::text, $3, $4, $5) r $$;

CREATE FUNCTION aws_lambda.invoke(IN function_name text, IN payload jsonb, IN region text DEFAULT NULL,
  IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None', IN context jsonb DEFAULT NULL,
  IN qualifier varchar(128) DEFAULT NULL,
  OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text)
LANGUAGE sql AS $$ SELECT r.status_code, r.response::jsonb, r.executed_version, r.log_result FROM rowcast.aws_lambda_invoke($1, $2::text, $4, $5, $6::json) r $$;

CREATE FUNCTION aws_lambda.invoke(IN function_name aws_commons._lambda_function_arn_1, IN payload jsonb,
  IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None', IN context jsonb DEFAULT NULL,
  IN qualifier varchar(128) DEFAULT NULL,
  OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text)
LANGUAGE sql AS $$ SELECT r.status_code, r.response::jsonb, r.executed_version, r.log_result FROM rowcast.aws_lambda_invoke(($1).function_name, $2::text, $3, $4, $5::json) r $$;

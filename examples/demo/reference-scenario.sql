-- The reference's SQL (shared/reference/aws-blog-trigger-lambda-sns.txt), with its typos repaired and nothing
-- else changed: on rowcast, `rowcast migrate` provides the aws_commons and aws_lambda schemas that
-- `CREATE EXTENSION aws_lambda` provides on RDS/Aurora.

--Create a Sample Business Events Table---------
CREATE TABLE public.customer_business_events (
	application varchar(64) NULL,
	category varchar(64) NULL,
	customer_reference_id varchar(8) NULL,
	exception_reason varchar(128) NULL,
	event_timestamp timestamp NULL
);

--Utility Function to convert row data to JSON---
CREATE OR REPLACE FUNCTION public.my_json_converter(
	application varchar(64),
	category varchar(64),
	customer_reference_id varchar(8),
	exception_reason varchar(128),
	event_timestamp timestamp
)
  RETURNS json 
  LANGUAGE plpgsql
AS $function$
DECLARE
	json_payload varchar(300);
BEGIN
	select json_build_object(
	'application', application ,
	'category', category ,
	'customer_reference_id', customer_reference_id ,
	'exception_reason', exception_reason ,
	'event_timestamp', event_timestamp 
	) into json_payload;

	RETURN json_payload;
END;
$function$
;

--Trigger Function that calls external lambda function ---
CREATE OR REPLACE FUNCTION public.my_db_trigger_function()
  RETURNS trigger
  LANGUAGE plpgsql
AS $function$
DECLARE
	my_record record;
BEGIN
	raise notice 'Start my_db_trigger_function';
	SELECT * FROM aws_lambda.invoke(aws_commons.create_lambda_function_arn('arn:aws:lambda:us-east-2:123456789100:function:my_rds_triggered_topic_writer')
,(select public.my_json_converter(
														   new.application ,
														   new.category ,
											            		   new.customer_reference_id ,
														   new.exception_reason ,
														   new.event_timestamp ))
  , 'Event'
) into my_record;
	raise notice 'End my_db_trigger_function';						
	RETURN NEW;
END;
$function$
;

--Trigger Function that calls external lambda function---
CREATE TRIGGER trigger_insert_event
  AFTER INSERT
  ON customer_business_events
  FOR EACH ROW
  EXECUTE PROCEDURE my_db_trigger_function();

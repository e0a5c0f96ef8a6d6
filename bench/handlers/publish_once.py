# The benchmark's no-op Python function, written as the reference's handler is: a boto3 SNS client at module
# scope, one publish of the event it was invoked with to the topic ENV_TOPIC_ARN.
import json
import os

import boto3

client = boto3.client('sns')


def handler(event, context):
    client.publish(TargetArn=os.environ['ENV_TOPIC_ARN'], Message=json.dumps(event))
    return {'statusCode': 200}

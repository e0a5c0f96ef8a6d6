import json
import boto3
import os

# TOPIC ARN-----------------------------------
# API Related-------------------------
client = boto3.client('sns')

def lambda_handler(event, context):
    # TODO implement
    print('Starting Lambda')
    # PRINT PostgreSQL Inserted Record --------------------
    print('Printing Event record from RDS:', event)

    # PUBLISH TO TOPIC------------------------------
    message_subject = "Notification for row-insert in RDS"
    response = client.publish(
        TargetArn=os.environ['ENV_TOPIC_ARN'],
        Message=json.dumps({'default': json.dumps(event)}),
        Subject=message_subject,
        MessageStructure='json'
    )
    print('Response from SNS:', response)
    print('Exiting Lambda')
    return {
        'statusCode': 200,
        'body': json.dumps('Notification sent:' +  response['MessageId'])
    }

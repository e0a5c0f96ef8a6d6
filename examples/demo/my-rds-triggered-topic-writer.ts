/**
 * The reference's Lambda function my_rds_triggered_topic_writer, ported from Python to TypeScript line for line:
 * boto3's SNS client becomes the AWS SDK's, made at module scope with no endpoint, as a Lambda function's is.
 * rowcast points it at the endpoint of the handler's thread, so the publish joins the invocation: the message is
 * written only if the invocation succeeds (docs/functions.md, "Publishing through the AWS SDK"). `context.publish`
 * does the same without the SDK.
 */
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';

// TOPIC ARN-----------------------------------
// API Related-------------------------
const client = new SNSClient({});

export const handler = async (event: Record<string, unknown>) => {
  console.log('Starting Lambda');
  // PRINT PostgreSQL Inserted Record --------------------
  console.log('Printing Event record from RDS:', JSON.stringify(event));

  // PUBLISH TO TOPIC------------------------------
  const message_subject = 'Notification for row-insert in RDS';
  const response = await client.send(
    new PublishCommand({
      TargetArn: process.env.ENV_TOPIC_ARN,
      Message: JSON.stringify({ default: JSON.stringify(event) }),
      Subject: message_subject,
      MessageStructure: 'json',
    }),
  );
  console.log('Response from SNS:', JSON.stringify({ MessageId: response.MessageId }));
  console.log('Exiting Lambda');
  return {
    statusCode: 200,
    body: JSON.stringify('Notification sent:' + response.MessageId),
  };
};

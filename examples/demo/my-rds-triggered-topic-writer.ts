/**
 * The reference's Lambda function my_rds_triggered_topic_writer, ported from Python to TypeScript line for line.
 * boto3's sns.publish becomes context.publish: the message is written only if the invocation succeeds. The
 * reference publishes {"default": json.dumps(event)} with SNS's JSON message structure, whose effect is that
 * subscribers receive json.dumps(event); publishing the event itself has that effect here.
 */
import type { LambdaContext } from '../../src/functions/lambda-context.js';

// TOPIC ARN-----------------------------------
const TOPIC_ARN = process.env.ENV_TOPIC_ARN!;

export const handler = async (event: Record<string, unknown>, context: LambdaContext) => {
  console.log('Starting Lambda');
  // PRINT PostgreSQL Inserted Record --------------------
  console.log('Printing Event record from RDS:', JSON.stringify(event));

  // PUBLISH TO TOPIC------------------------------
  const message_subject = 'Notification for row-insert in RDS';
  const response = await context.publish(TOPIC_ARN, event, { subject: message_subject });
  console.log('Response from SNS:', JSON.stringify(response));
  console.log('Exiting Lambda');
  return {
    statusCode: 200,
    body: JSON.stringify('Notification sent:' + response.MessageId),
  };
};

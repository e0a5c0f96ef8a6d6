/**
 * Amazon Resource Names as rowcast makes and reads them for its AWS surface (the SNS and Lambda APIs, SNS
 * envelopes): `arn:aws:sns:<region>:<account>:<topic>` and `arn:aws:lambda:<region>:<account>:function:<name>`.
 * Region and account come from the config's `aws` key; they only label, since there is one rowcast per store.
 */

export interface AwsIdentity {
  region: string;
  accountId: string;
}

export const snsTopicArn = (aws: AwsIdentity, topic: string): string =>
  `arn:aws:sns:${aws.region}:${aws.accountId}:${topic}`;

/** A subscription's ARN: its topic's ARN and the subscription's id (SNS uses a UUID there). */
export const snsSubscriptionArn = (aws: AwsIdentity, topic: string, id: string): string =>
  `${snsTopicArn(aws, topic)}:${id}`;

export const lambdaFunctionArn = (aws: AwsIdentity, name: string): string =>
  `arn:aws:lambda:${aws.region}:${aws.accountId}:function:${name}`;

export interface ParsedArn {
  service: string;
  region: string;
  accountId: string;
  /** Everything after the account: "topic", "topic:subscription-id", "function:name[:qualifier]". */
  resource: string;
}

/** Splits an ARN into its parts, or null if it is not one ("arn:<partition>:<service>:<region>:<account>:<resource>"). */
export function parseArn(arn: string): ParsedArn | null {
  const m = /^arn:aws[a-z-]*:([a-z0-9-]+):([a-z0-9-]*):(\d{12}|):(.+)$/.exec(arn);
  return m ? { service: m[1]!, region: m[2]!, accountId: m[3]!, resource: m[4]! } : null;
}

/**
 * The topic a TopicArn or TargetArn names, or null if it is not an SNS topic ARN. Region and account are not
 * checked against the config: a client configured for another region still reaches its topic by name, as the
 * endpoint (not the ARN) decides where an SDK's request goes.
 */
export function topicOfArn(arn: string): string | null {
  const parsed = parseArn(arn);
  if (!parsed || parsed.service !== 'sns' || parsed.resource.includes(':')) return null;
  return parsed.resource;
}

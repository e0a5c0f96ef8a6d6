import { createSign } from 'node:crypto';

/**
 * SNS's HTTP envelope: the JSON body an SNS HTTP(S) subscriber receives, and its signature. Pure: the caller
 * gives the fields and the signing key. The keys and their order are SNS's own (docs/sns.md "Envelope and
 * confirmation"); subscribers' verification code (sns-validator, the AWS SDKs' message validators) rebuilds the
 * string to sign from them.
 */

export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';
export type SignatureVersion = 1 | 2;

export interface SnsMessageAttribute {
  Type: string;
  Value: string;
}

/** What a message of each type carries besides the signature fields. */
export type SnsEnvelopeFields =
  | {
      Type: 'Notification';
      MessageId: string;
      TopicArn: string;
      Subject?: string;
      Message: string;
      Timestamp: string;
      UnsubscribeURL: string;
      MessageAttributes?: Record<string, SnsMessageAttribute>;
    }
  | {
      Type: 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';
      MessageId: string;
      Token: string;
      TopicArn: string;
      Message: string;
      SubscribeURL: string;
      Timestamp: string;
    };

export type SnsEnvelope = SnsEnvelopeFields & {
  SignatureVersion: '1' | '2';
  Signature: string;
  SigningCertURL: string;
};

/** The keys signed, in SNS's order (byte order of the names), for each type. */
const SIGNED_KEYS: Record<SnsMessageType, readonly string[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

/**
 * SNS's string to sign: "key\nvalue\n" for each signed key the message has (Subject only when set), in the
 * order above. https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
 */
export function snsStringToSign(fields: SnsEnvelopeFields): string {
  const values = fields as unknown as Record<string, unknown>;
  let text = '';
  for (const key of SIGNED_KEYS[fields.Type]) {
    const value = values[key];
    if (value !== undefined && value !== null) text += `${key}\n${String(value)}\n`;
  }
  return text;
}

/** Version 1 is SHA1withRSA, version 2 SHA256withRSA, both RSASSA-PKCS1-v1_5, in base64. */
export function signSnsMessage(fields: SnsEnvelopeFields, version: SignatureVersion, privateKeyPem: string): string {
  return createSign(version === 2 ? 'RSA-SHA256' : 'RSA-SHA1')
    .update(snsStringToSign(fields), 'utf8')
    .sign(privateKeyPem, 'base64');
}

/** The envelope in SNS's key order, signed. */
export function buildSnsEnvelope(
  fields: SnsEnvelopeFields,
  signing: { version: SignatureVersion; privateKeyPem: string; certUrl: string },
): SnsEnvelope {
  const signature = {
    SignatureVersion: String(signing.version) as '1' | '2',
    Signature: signSnsMessage(fields, signing.version, signing.privateKeyPem),
    SigningCertURL: signing.certUrl,
  };
  if (fields.Type === 'Notification') {
    const { Type, MessageId, TopicArn, Subject, Message, Timestamp, UnsubscribeURL, MessageAttributes } = fields;
    return {
      Type,
      MessageId,
      TopicArn,
      ...(Subject !== undefined ? { Subject } : {}),
      Message,
      Timestamp,
      ...signature,
      UnsubscribeURL,
      ...(MessageAttributes && Object.keys(MessageAttributes).length ? { MessageAttributes } : {}),
    };
  }
  const { Type, MessageId, Token, TopicArn, Message, SubscribeURL, Timestamp } = fields;
  return { Type, MessageId, Token, TopicArn, Message, SubscribeURL, Timestamp, ...signature };
}

/** SNS's texts of the handshake messages. */
export const confirmationText = (topicArn: string): string =>
  `You have chosen to subscribe to the topic ${topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`;
export const unsubscribeText = (subscriptionArn: string): string =>
  `You have chosen to deactivate subscription ${subscriptionArn}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.`;

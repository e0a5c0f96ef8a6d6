import type { Pool } from '../../store/pool.js';
import type { RenderedMessage } from '../../model/message-format.js';
import type { OutboundMessage, Subscription } from '../../model/sink.js';
import { type AwsIdentity, snsSubscriptionArn, snsTopicArn } from '../../model/arn.js';
import { controlTypeOf, subscribeUrl, UnsubscribeLinks } from './confirmation.js';
import {
  buildSnsEnvelope,
  confirmationText,
  type SignatureVersion,
  type SnsEnvelope,
  type SnsEnvelopeFields,
  unsubscribeText,
} from './envelope.js';
import { certificatePath, currentSigningKey, type SigningKey } from './signing-keys.js';

/** SNS's HTTP headers and User-Agent. */
export const SNS_USER_AGENT = 'Amazon Simple Notification Service Agent';
export const SNS_CONTENT_TYPE = 'text/plain; charset=UTF-8';

/**
 * Renders messages as SNS delivers them, for one process: to HTTP(S) subscribers the signed JSON envelope with
 * SNS's x-amz-sns-* headers, or with RawMessageDelivery the bare message (handshake messages are never raw); to
 * email and email-json subscribers SNS's mails.
 * The signing key is loaded on first need and again after reload() (a rotation).
 */
export class SnsEnvelopes {
  private key: Promise<SigningKey> | null = null;
  private links: Promise<UnsubscribeLinks> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly aws: AwsIdentity,
    private readonly publicUrl: string | undefined,
  ) {}

  /** Picks up a rotated key at the next message. */
  reload(): void {
    this.key = null;
  }

  /** For http/https: the signed envelope (or with RawMessageDelivery the bare body) and SNS's headers. */
  async render(subscription: Subscription, message: OutboundMessage): Promise<RenderedMessage> {
    const control = controlTypeOf(message.topic);
    const { topicArn, subscriptionArn } = this.arns(subscription);
    const headers: Record<string, string> = {
      'x-amz-sns-message-type': control ?? 'Notification',
      'x-amz-sns-message-id': message.id,
      'x-amz-sns-topic-arn': topicArn,
    };
    // SNS names the subscription on every message but the confirmation request (it is not one yet).
    if (control !== 'SubscriptionConfirmation') headers['x-amz-sns-subscription-arn'] = subscriptionArn;
    if (!control && subscription.settings.rawMessageDelivery) {
      this.baseUrl();
      return {
        body: message.body,
        contentType: SNS_CONTENT_TYPE,
        headers: { ...headers, 'x-amz-sns-rawdelivery': 'true' },
      };
    }
    return {
      body: JSON.stringify((await this.envelope(subscription, message)).envelope),
      contentType: SNS_CONTENT_TYPE,
      headers,
    };
  }

  /**
   * For email and email-json: SNS's mails. email-json: the signed envelope as the text; email: the Message with
   * SNS's unsubscribe footer, or SNS's confirmation text with the SubscribeURL.
   */
  async renderEmail(subscription: Subscription, message: OutboundMessage): Promise<{ subject: string; text: string }> {
    const { envelope } = await this.envelope(subscription, message);
    const subject =
      envelope.Type === 'Notification'
        ? (envelope.Subject ?? 'AWS Notification Message')
        : `AWS Notification - ${envelope.Type === 'SubscriptionConfirmation' ? 'Subscription' : 'Unsubscribe'} Confirmation`;
    if (subscription.protocol === 'email-json') return { subject, text: JSON.stringify(envelope) };
    if (envelope.Type === 'Notification') {
      return {
        subject,
        text: `${envelope.Message}

--
If you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:
${envelope.UnsubscribeURL}
`,
      };
    }
    const text =
      envelope.Type === 'SubscriptionConfirmation'
        ? `You have chosen to subscribe to the topic:
${envelope.TopicArn}

To confirm this subscription, click or visit the link below (If this was in error no action is necessary):
${envelope.SubscribeURL}
`
        : `${envelope.Message}

To restore the subscription, click or visit the link below:
${envelope.SubscribeURL}
`;
    return { subject, text };
  }

  /** The signed envelope of a message: a Notification, or the handshake message a control row stands for. */
  async envelope(subscription: Subscription, message: OutboundMessage): Promise<{ envelope: SnsEnvelope }> {
    const publicUrl = this.baseUrl();
    const { topicArn, subscriptionArn } = this.arns(subscription);
    const control = controlTypeOf(message.topic);
    let fields: SnsEnvelopeFields;
    if (control) {
      const token = message.attributes.Token ?? '';
      fields = {
        Type: control,
        MessageId: message.id,
        Token: token,
        TopicArn: topicArn,
        Message: control === 'SubscriptionConfirmation' ? confirmationText(topicArn) : unsubscribeText(subscriptionArn),
        SubscribeURL: subscribeUrl(publicUrl, topicArn, token),
        Timestamp: message.timestamp,
      };
    } else {
      this.links ??= UnsubscribeLinks.load(this.pool).catch((err: Error) => {
        this.links = null;
        throw err;
      });
      fields = {
        Type: 'Notification',
        MessageId: message.id,
        TopicArn: topicArn,
        ...(message.subject ? { Subject: message.subject } : {}),
        Message: message.body,
        Timestamp: message.timestamp,
        UnsubscribeURL: (await this.links).url(publicUrl, subscriptionArn, subscription.name),
        MessageAttributes: snsMessageAttributes(message),
      };
    }
    const key = await this.signingKey();
    const version: SignatureVersion = subscription.signatureVersion === 2 ? 2 : 1;
    return {
      envelope: buildSnsEnvelope(fields, {
        version,
        privateKeyPem: key.privateKeyPem,
        certUrl: `${publicUrl}${certificatePath(key.certId)}`,
      }),
    };
  }

  private arns(subscription: Subscription): { topicArn: string; subscriptionArn: string } {
    return {
      topicArn: snsTopicArn(this.aws, subscription.topic),
      subscriptionArn: snsSubscriptionArn(this.aws, subscription.topic, subscription.name),
    };
  }

  private baseUrl(): string {
    const publicUrl = this.publicUrl?.replace(/\/+$/, '');
    if (!publicUrl)
      throw new Error(
        'SNS envelopes name URLs of rowcast (certificate, SubscribeURL, UnsubscribeURL): set runtime.http.port (and publicUrl if subscribers reach rowcast at another address)',
      );
    return publicUrl;
  }

  private signingKey(): Promise<SigningKey> {
    this.key ??= currentSigningKey(this.pool).catch((err: Error) => {
      this.key = null;
      throw err;
    });
    return this.key;
  }
}

/**
 * The envelope's MessageAttributes: each with the data type it was published with (SNS API), String otherwise.
 * Values as SNS sends them: Binary as its base64, String.Array as its JSON text.
 */
export function snsMessageAttributes(
  message: Pick<OutboundMessage, 'attributes' | 'attributeTypes'>,
): Record<string, { Type: string; Value: string }> {
  return Object.fromEntries(
    Object.entries(message.attributes as Record<string, unknown>).map(([name, value]) => [
      name,
      {
        Type: message.attributeTypes?.[name] ?? 'String',
        Value: typeof value === 'string' ? value : JSON.stringify(value),
      },
    ]),
  );
}

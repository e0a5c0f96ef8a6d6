import type { MessageFormat } from '../config/subscription-schema.js';
import type { OutboundMessage, SubscriptionSettings } from './sink.js';

export interface RenderedMessage {
  body: string;
  contentType: string;
  /** Protocol headers the format needs (CloudEvents binary mode puts its attributes there). */
  headers: Record<string, string>;
}

const isJson = (message: OutboundMessage) => message.contentType === 'application/json';
/** A JSON body is embedded as stored, byte for byte, so bigint and numeric values keep every digit. */
const embed = (message: OutboundMessage) => (isJson(message) ? message.body : JSON.stringify(message.body));

/** CloudEvents 1.0 context attributes of a message; `id` is the stable message id, never a random one. */
function cloudEventAttributes(message: OutboundMessage): Record<string, string> {
  const op = message.attributes.op;
  const attrs: Record<string, string> = {
    specversion: '1.0',
    id: message.id,
    source: `/rowcast/topics/${encodeURIComponent(message.topic)}`,
    type: op ? `rowcast.change.${op.toLowerCase()}` : 'rowcast.message',
    time: message.timestamp,
    datacontenttype: message.contentType,
  };
  if (message.subject) attrs.subject = message.subject;
  // The distributed tracing extension.
  if (message.trace) attrs.traceparent = message.trace;
  return attrs;
}

/**
 * The bytes a subscriber receives. envelope: rowcast's JSON around the message; raw: the body alone;
 * cloudevents: a CloudEvents 1.0 structured-mode event; cloudevents-binary: the body with the CloudEvents
 * attributes as ce-* headers (HTTP binary mode; protocols without headers get structured mode). sns: SNS's signed
 * envelope, which the http sink renders (src/delivery/sns-envelope/sns-envelopes.ts), since it needs the signing key.
 */
export function renderMessage(format: MessageFormat, message: OutboundMessage): RenderedMessage {
  switch (format) {
    case 'raw':
      return { body: message.body, contentType: message.contentType, headers: {} };
    case 'cloudevents': {
      const attrs = cloudEventAttributes(message);
      const fields = Object.entries(attrs).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
      const data = isJson(message) ? `"data":${message.body}` : `"data":${JSON.stringify(message.body)}`;
      return {
        body: `{${fields.join(',')},${data}}`,
        contentType: 'application/cloudevents+json; charset=utf-8',
        headers: {},
      };
    }
    case 'cloudevents-binary': {
      const { datacontenttype, ...attrs } = cloudEventAttributes(message);
      return {
        body: message.body,
        contentType: datacontenttype!,
        headers: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [`ce-${k}`, v])),
      };
    }
    case 'sns':
      // Signed with the installation's key and naming rowcast's URLs: the http sink renders it (SnsEnvelopes).
      throw new Error(
        "format 'sns' is what SNS sends to http, https, email and email-json subscribers; use another format for this protocol",
      );
    case 'envelope':
    default:
      return {
        body: `{"id":${JSON.stringify(message.id)},"topic":${JSON.stringify(message.topic)},"subject":${JSON.stringify(message.subject)},"attributes":${JSON.stringify(message.attributes)},"timestamp":${JSON.stringify(message.timestamp)},"trace":${JSON.stringify(message.trace)},"body":${embed(message)}}`,
        contentType: 'application/json',
        headers: {},
      };
  }
}

/**
 * A CloudEvents attribute as an HTTP header value (HTTP protocol binding 1.0.2, 3.1.3.2): space, '"', '%' and every
 * character outside printable ASCII are percent-encoded as UTF-8 bytes. Sent raw, a character above U+00FF makes
 * the request itself invalid, so every attempt would fail.
 */
export function percentEncodeHeaderValue(value: string): string {
  return value.replace(/[^\x21\x23\x24\x26-\x7e]/gu, (c) =>
    Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

/** The body alone, for protocols that carry no headers: binary CloudEvents fall back to structured mode. */
export function renderBody(format: SubscriptionSettings['format'], message: OutboundMessage): string {
  return renderMessage(format === 'cloudevents-binary' ? 'cloudevents' : format, message).body;
}

export function contentTypeOf(format: SubscriptionSettings['format'], message: OutboundMessage): string {
  return renderMessage(format === 'cloudevents-binary' ? 'cloudevents' : format, message).contentType;
}

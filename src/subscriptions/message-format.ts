import type { OutboundMessage, SubscriptionSettings } from './sinks/sink.js';

/**
 * envelope: rowcast's JSON around the message; a JSON body is embedded as it was stored, byte for byte, so
 * bigint and numeric values keep every digit. raw: the body alone.
 */
export function renderBody(format: SubscriptionSettings['format'], message: OutboundMessage): string {
  if (format === 'raw') return message.body;
  const body = message.contentType === 'application/json' ? message.body : JSON.stringify(message.body);
  return `{"id":${JSON.stringify(message.id)},"topic":${JSON.stringify(message.topic)},"subject":${JSON.stringify(message.subject)},"attributes":${JSON.stringify(message.attributes)},"timestamp":${JSON.stringify(message.timestamp)},"trace":${JSON.stringify(message.trace)},"body":${body}}`;
}

export function contentTypeOf(format: SubscriptionSettings['format'], message: OutboundMessage): string {
  return format === 'raw' ? message.contentType : 'application/json';
}

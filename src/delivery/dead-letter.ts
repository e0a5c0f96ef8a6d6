import { randomUUID } from 'node:crypto';
import type { NewMessage } from '../routing/fan-out.js';
import { renderMessage } from '../model/message-format.js';
import type { OutboundMessage } from '../model/sink.js';

/**
 * The message a dead-letter topic receives for a delivery that went dead: who failed, how often, the last
 * error, and the original message in rowcast's envelope (byte for byte).
 */
export function deadLetterMessage(input: {
  topic: string;
  subscription: string;
  attempts: number;
  error: string;
  status?: number;
  message: OutboundMessage;
}): NewMessage {
  const info = {
    subscription: input.subscription,
    attempts: input.attempts,
    lastError: input.error,
    lastStatus: input.status ?? null,
  };
  return {
    id: randomUUID(),
    topic: input.topic,
    subject: `Dead letter from ${input.subscription}: ${input.message.subject ?? input.message.topic}`.slice(0, 100),
    body: `{"deadLetter":${JSON.stringify(info)},"message":${renderMessage('envelope', input.message).body}}`,
    contentType: 'application/json',
    attributes: {
      deadLetterSubscription: input.subscription,
      originalTopic: input.message.topic,
      ...input.message.attributes,
    },
    groupKey: null,
  };
}

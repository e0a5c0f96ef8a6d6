import { randomUUID } from 'node:crypto';
import type { NewMessage } from '../routing/fan-out.js';
import { renderMessage } from '../model/message-format.js';
import type { OutboundMessage, Subscription } from '../model/sink.js';
import type { Logger } from '../observability/logger.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { DeliveryResult } from './delivery-store.js';

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

/** The result of an attempt after which a delivery is dead: logged with how to redrive it, with its dead letter. */
export function deadResult(
  log: Logger,
  claim: ClaimedDelivery,
  subscription: Subscription,
  base: Omit<DeliveryResult, 'state'>,
  error: string,
): DeliveryResult {
  // Not one more failed attempt: nothing will send this message again until someone redrives it.
  log.error(
    {
      subscription: claim.subscription,
      delivery: claim.deliveryId,
      message: claim.message.id,
      attempts: claim.attempt,
      status: base.status,
      error,
      deadLetterTopic: subscription.deadLetterTopic,
      redrive: `rowcast redrive --subscription ${claim.subscription}`,
    },
    'delivery dead: no attempts left',
  );
  const deadLetter = subscription.deadLetterTopic
    ? deadLetterMessage({
        topic: subscription.deadLetterTopic,
        subscription: subscription.name,
        attempts: claim.attempt,
        error,
        status: base.status,
        message: claim.message,
      })
    : undefined;
  return { ...base, state: 'dead', error, deadLetter };
}

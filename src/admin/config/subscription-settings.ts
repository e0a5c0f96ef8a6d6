import type { SubscriptionConfig } from '../../config/subscription-schema.js';

/*
 * How a subscription of the config is stored: its settings column and its endpoint. `apply` writes them, and an
 * SNS Subscribe (sns/) stores settings the same way.
 */

/** What a delivering process needs besides the secret; a protocol's own options go to its sink as `options`. */
export function subscriptionSettings(sub: SubscriptionConfig): Record<string, unknown> {
  const common = {
    format: sub.format,
    deliveryPolicy: sub.deliveryPolicy,
    maxConcurrency: sub.maxConcurrency,
    ...(sub.disableAfter ? { disableAfter: sub.disableAfter } : {}),
  };
  if (isWebhook(sub))
    return {
      ...common,
      headers: sub.headers,
      ...(sub.format === 'sns' ? { rawMessageDelivery: sub.rawMessageDelivery, confirmation: sub.confirmation } : {}),
    };
  return { ...common, headers: {}, options: 'options' in sub ? sub.options : undefined };
}

/** Where a subscription delivers, in one line (status, logs; the function name for function subscriptions). */
export function endpointOf(sub: SubscriptionConfig): string {
  switch (sub.protocol) {
    case 'function':
      return sub.function;
    case 'email':
    case 'email-json':
      return `mailto:${sub.options.to.join(',')}`;
    case 'nats':
      return `nats:${sub.options.subject}`;
    case 'amqp':
      return `amqp:${sub.options.exchange || '(default exchange)'}/${sub.options.routingKey}`;
    case 'redis':
      return `redis:${sub.options.stream}`;
    case 'mqtt':
      return `mqtt:${sub.options.topic}`;
    case 'log':
      return `log:${sub.options.stream}`;
    default:
      return sub.endpoint;
  }
}

export const isWebhook = (
  sub: SubscriptionConfig,
): sub is Extract<SubscriptionConfig, { protocol: 'http' | 'https' }> =>
  sub.protocol === 'http' || sub.protocol === 'https';

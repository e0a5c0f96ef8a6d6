import { z } from 'zod';
import { envRef, optionsParser, resolveUrl, topicTemplate } from './settings-support.js';

/**
 * Options of an `amqp` subscription (AMQP 0-9-1, RabbitMQ): each message is published, persistent, to an exchange
 * on a confirm channel and counts as delivered once the broker confirmed it (basic.ack) — with `mandatory` (the
 * default), only if some queue received it.
 *
 *   { topic: 'orders', protocol: 'amqp', options: { url: { env: 'AMQP_URL' }, exchange: 'rowcast',
 *     routingKey: 'rowcast.{topic}', assertExchange: true, exchangeType: 'topic' } }
 */

const amqpUrl = z
  .string()
  .regex(/^amqps?:\/\/[^\s]+$/, 'an AMQP URL, "amqp://user:password@host:5672/vhost" (or amqps:// for TLS)')
  .refine((url) => URL.canParse(url), {
    message: 'not a valid URL; percent-encode special characters of the password and vhost',
  });

const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;

export const amqpOptionsSchema = z
  .strictObject({
    /** The broker; credentials and vhost go in the URL, so it may be { env: "VARIABLE" } to keep it out of the config. */
    url: z
      .union([amqpUrl, envRef('AMQP_URL')], {
        error:
          'an AMQP URL ("amqp://user:password@host:5672/vhost"), or { env: "VARIABLE" } to read it from an environment variable',
      })
      .default('amqp://guest:guest@127.0.0.1:5672'),
    /** The exchange messages are published to; "" is the default exchange, which routes to the queue named by routingKey. */
    exchange: z
      .string({
        error:
          'the exchange to publish to (e.g. "rowcast"; "" for the default exchange, routing to the queue named by routingKey)',
      })
      .max(255, 'at most 255 characters')
      .regex(/^[A-Za-z0-9_.:-]*$/, 'letters, digits, "-", "_", "." and ":" only'),
    /** Routing key of each message; `{topic}` becomes the rowcast topic name. */
    routingKey: topicTemplate(
      z.string().max(200, 'at most 200 characters (AMQP allows 255 bytes, the topic name included)'),
    ).default('{topic}'),
    /** Declare the exchange (durable) before the first publish; otherwise it must exist. */
    assertExchange: z.boolean({ error: 'true or false' }).default(false),
    /** The type of the exchange declared by assertExchange. */
    exchangeType: z
      .enum(EXCHANGE_TYPES, { error: `one of ${EXCHANGE_TYPES.map((t) => `"${t}"`).join(', ')}` })
      .optional(),
    /**
     * true: a message no queue receives (no binding matches) is returned by the broker and the delivery retried;
     * false: the broker's ack alone counts, and an unroutable message is dropped by the broker.
     */
    mandatory: z.boolean({ error: 'true or false' }).default(true),
  })
  .superRefine((options, ctx) => {
    if (options.exchangeType && !options.assertExchange) {
      ctx.addIssue({
        code: 'custom',
        path: ['exchangeType'],
        message: 'only used with assertExchange: true (an existing exchange keeps its type)',
      });
    }
    if (options.assertExchange && options.exchange === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['assertExchange'],
        message: 'the default exchange ("") cannot be declared; name an exchange or set assertExchange: false',
      });
    }
    if (options.assertExchange && options.exchange.startsWith('amq.')) {
      ctx.addIssue({
        code: 'custom',
        path: ['assertExchange'],
        message: `"amq." exchanges are the broker's own and cannot be declared; set assertExchange: false`,
      });
    }
    if (options.exchange === '' && options.routingKey === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['routingKey'],
        message: 'with the default exchange (""), the routing key is the queue name and must not be empty',
      });
    }
  });

export type AmqpOptionsInput = z.input<typeof amqpOptionsSchema>;
export type AmqpOptions = z.output<typeof amqpOptionsSchema>;
export type AmqpExchangeType = (typeof EXCHANGE_TYPES)[number];

/** Validates a subscription's options; the error names each offending option ("options.exchange: …"). */
export const parseAmqpOptions = optionsParser('amqp', amqpOptionsSchema);

/** The broker URL, read from the environment when it is { env }; throws an error naming the option (never the value). */
export function resolveAmqpUrl(url: AmqpOptions['url']): string {
  return resolveUrl(url, /^amqps?:\/\//, 'an AMQP URL ("amqp://user:password@host:5672/vhost")');
}

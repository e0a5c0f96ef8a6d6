import { z } from 'zod';
import { amqpOptionsSchema } from './sink-settings/amqp-settings.js';
import { emailOptionsSchema } from './sink-settings/email-settings.js';
import { logOptionsSchema } from './sink-settings/log-settings.js';
import { mqttOptionsSchema } from './sink-settings/mqtt-settings.js';
import { natsOptionsSchema } from './sink-settings/nats-settings.js';
import { redisOptionsSchema } from './sink-settings/redis-settings.js';
import { DEFAULT_SECRET_ROTATION_OVERLAP, MAX_SECRET_ROTATION_OVERLAP } from './sink-settings/webhook-settings.js';
import { duration } from './duration.js';
import { functionName } from './function-schema.js';
import { topicName } from './topic-schema.js';

/** Message formats of subscriptions (rendered by src/model/message-format.ts). */
export const FORMATS = ['envelope', 'raw', 'cloudevents', 'cloudevents-binary', 'sns'] as const;
export type MessageFormat = (typeof FORMATS)[number];

export const subscriptionName = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'use 1–128 letters, digits, "-" or "_"');

export const deliveryPolicySchema = z.strictObject({
  /** Attempts in all, the first one included. */
  maxAttempts: z.number().int().min(1).max(100).default(10),
  /** Backoff before the 2nd attempt; it doubles per attempt up to maxDelay, with full jitter. */
  minDelay: duration.default(1000),
  maxDelay: duration.default(5 * 60_000),
  /** Time allowed for one request, connect to response headers. */
  timeout: duration.default(10_000),
  /** Longest Retry-After (429/503) that is honoured; longer ones are capped to this. */
  maxRetryAfter: duration.default(60 * 60_000),
});

/** Standard Webhooks secrets: "whsec_" and 24–64 random bytes in base64. */
export const WEBHOOK_SECRET = /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/;
const webhookSecretHint =
  'a Standard Webhooks secret: "whsec_" followed by 24–64 random bytes in base64 (e.g. from `node -e "console.log(\'whsec_\' + crypto.randomBytes(24).toString(\'base64\'))"`), or omit it and rowcast generates one';

const secretRef = z.union(
  [
    z.string().regex(WEBHOOK_SECRET, webhookSecretHint),
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
  ],
  { error: 'write the signing secret ("whsec_…") or { env: "VARIABLE" } to read it from an environment variable' },
);

/**
 * disableAfter: disable a subscription whose endpoint keeps failing (off by default). A duration ("5d") is
 * { failingFor }; the object trips on whichever limit is reached first. Its deliveries wait, pending, until
 * `rowcast resume`.
 */
export const disableAfterSchema = z
  .union(
    [
      duration,
      z.strictObject({
        /** Every attempt failed for this long, with no success in between. */
        failingFor: duration.optional(),
        /** This many deliveries in a row went dead, with no success in between. */
        deadDeliveries: z
          .number({ error: 'a whole number of dead deliveries, e.g. 100' })
          .int('a whole number, e.g. 100')
          .min(1, 'at least 1')
          .optional(),
      }),
    ],
    {
      error:
        'write a duration ("5d": disabled after failing for five days) or { failingFor: "5d", deadDeliveries: 100 }',
    },
  )
  .transform((v, ctx) => {
    const policy = typeof v === 'number' ? { failingFor: v } : v;
    if (policy.failingFor === undefined && policy.deadDeliveries === undefined) {
      ctx.addIssue({
        code: 'custom',
        message:
          'give failingFor (e.g. "5d"), deadDeliveries (e.g. 100), or both; or leave disableAfter out to never disable',
      });
      return z.NEVER;
    }
    if (policy.failingFor !== undefined && policy.failingFor < 1000) {
      ctx.addIssue({
        code: 'custom',
        message: `failingFor ${policy.failingFor}ms is too short to tell a failing endpoint from a blip; write at least "1s" (Svix waits 5 days: "5d")`,
      });
      return z.NEVER;
    }
    return { failingFor: policy.failingFor ?? null, deadDeliveries: policy.deadDeliveries ?? null };
  });

/** What every subscription has, whatever its protocol. */
export const subscriptionCommon = {
  topic: topicName,
  /**
   * envelope: rowcast's JSON (id, topic, subject, attributes, body, timestamp); raw: the message body only; CloudEvents 1.0 in structured or
   * binary (HTTP) mode; sns: SNS's signed HTTP envelope (http/https only; docs/sns.md).
   */
  format: z.enum(FORMATS).default('envelope'),
  /** SNS filter policy: only matching messages are delivered (validated at load). */
  filterPolicy: z.record(z.string(), z.unknown()).optional(),
  /** What the filter policy looks at: the message attributes (SNS's default) or the JSON body. */
  filterPolicyScope: z.enum(['MessageAttributes', 'MessageBody']).default('MessageAttributes'),
  deliveryPolicy: deliveryPolicySchema.prefault({}),
  /** Concurrent deliveries to this endpoint from one rowcast process. */
  maxConcurrency: z.number().int().min(1).max(1000).default(32),
  /** A topic that receives each delivery that went dead (with its last error), e.g. to page the ops team; it stays dead here too, for redrive. */
  deadLetter: z.strictObject({ topic: topicName }).optional(),
  /** Disable the subscription when its endpoint keeps failing (off by default); `rowcast resume` turns it back on. */
  disableAfter: disableAfterSchema.optional(),
  /**
   * Read the topic's messages through a cursor (the default) instead of one delivery row per message: a batch costs
   * one range lease and its completion, whatever its size; only failed, dead and handed-back work, and FIFO groups
   * held behind a failed head, get rows (docs/subscriptions.md). `false` keeps a row per message, and with it what
   * the endpoint answered for every delivery.
   */
  cursor: z.boolean().default(true),
};

export const httpSubscriptionSchema = z.strictObject({
  ...subscriptionCommon,
  protocol: z.enum(['http', 'https']),
  endpoint: z.url({
    protocol: /^https?$/,
    error: 'an absolute http:// or https:// URL, e.g. "https://example.com/hooks/rowcast"',
  }),
  /** Standard Webhooks signing secret ("whsec_" + base64). Omitted: rowcast generates one at apply (see `rowcast status --secrets`). */
  secret: secretRef.optional(),
  /**
   * When `secret` changes, apply keeps the old secret valid this long: meanwhile every request carries a signature
   * with each secret, so receivers can switch at their own pace (Svix: 24 h; Stripe: up to 7 days). 0 ends the old
   * secret at once (after a leak).
   */
  secretRotationOverlap: duration
    .pipe(z.number().max(MAX_SECRET_ROTATION_OVERLAP, 'at most 30 days ("30d"); finish a rotation within a month'))
    .default(DEFAULT_SECRET_ROTATION_OVERLAP),
  /** Extra request headers (e.g. an API key); values may reference env as "${NAME}". */
  headers: z.record(z.string(), z.string()).default({}),
  /** format 'sns': SNS's RawMessageDelivery, the message body alone (with x-amz-sns-rawdelivery: true) instead of the signed envelope. */
  rawMessageDelivery: z.boolean().default(false),
  /**
   * format 'sns': whether the endpoint must confirm the subscription (SNS's SubscriptionConfirmation, answered by a GET of its
   * SubscribeURL) before it receives messages. Declared in the config the endpoint is trusted: 'none' by default.
   */
  confirmation: z.enum(['none', 'required']).default('none'),
});

/** A function as a subscription endpoint: each message queues one invocation (its event is the rendered message). */
export const functionSubscriptionSchema = z.strictObject({
  ...subscriptionCommon,
  protocol: z.literal('function'),
  function: functionName,
});

/** A protocol whose own settings are in `options`, validated by the schema in its sink folder (sinks/<protocol>/). */
const withOptions = <const P extends readonly [string, ...string[]], O extends z.ZodType>(protocols: P, options: O) =>
  z.strictObject({ ...subscriptionCommon, protocol: z.enum(protocols), options });

/** email: a readable mail per message; email-json: the envelope JSON as the mail body. */
export const emailSubscriptionSchema = withOptions(['email', 'email-json'], emailOptionsSchema);
/** NATS JetStream: published with Nats-Msg-Id = message id (deduplicated by the stream), done on the stream's ack. */
export const natsSubscriptionSchema = withOptions(['nats'], natsOptionsSchema);
/** RabbitMQ: persistent messages through a confirm channel, done on the publisher confirm. */
export const amqpSubscriptionSchema = withOptions(['amqp'], amqpOptionsSchema);
/** Redis Streams: XADD (optionally capped with MAXLEN), done on the entry id. */
export const redisSubscriptionSchema = withOptions(['redis'], redisOptionsSchema);
/** MQTT: QoS 1 or 2, done on PUBACK/PUBCOMP. */
export const mqttSubscriptionSchema = withOptions(['mqtt'], mqttOptionsSchema);
/** A JSON line per message on stdout or stderr, for development. */
export const logSubscriptionSchema = withOptions(['log'], logOptionsSchema);

export const subscriptionSchema = z.discriminatedUnion('protocol', [
  httpSubscriptionSchema,
  functionSubscriptionSchema,
  emailSubscriptionSchema,
  natsSubscriptionSchema,
  amqpSubscriptionSchema,
  redisSubscriptionSchema,
  mqttSubscriptionSchema,
  logSubscriptionSchema,
]);

export type SubscriptionConfig = z.output<typeof subscriptionSchema>;
export type HttpSubscriptionConfig = z.output<typeof httpSubscriptionSchema>;
export type DeliveryPolicy = z.output<typeof deliveryPolicySchema>;

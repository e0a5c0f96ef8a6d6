import { z } from 'zod';
import { duration } from './duration.js';

/** SNS's topic names: 1–256 letters, digits, "-" and "_"; a FIFO topic's may end in ".fifo". */
export const TOPIC_NAME = /^(?=.{1,256}$)[A-Za-z0-9_-]+(\.fifo)?$/;
export const topicName = z
  .string()
  .regex(TOPIC_NAME, 'use 1–256 letters, digits, "-" or "_", optionally ending in ".fifo" (as SNS topic names)');

export const topicSchema = z.strictObject({
  description: z.string().optional(),
  /** FIFO: each subscription receives a group's messages one at a time, in order (a capture's group is the row's primary key). */
  fifo: z.boolean().default(false),
  /** FIFO: a message whose dedupKey was seen within this window is dropped (SNS: 5 minutes). */
  dedupWindow: duration.default(5 * 60_000),
  /** FIFO: after a message of a group goes dead, continue with the group's next one, or hold the group until it is redriven. */
  onDeadMessage: z.enum(['continue', 'block-group']).default('continue'),
  /** Largest message body in bytes (SNS: 256 KiB). */
  maxMessageSize: z
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024 * 1024)
    .default(256 * 1024),
  /**
   * Larger messages: reject — a function's publish throws, and a captured change's deliveries are dead with an error
   * saying so (redrive after raising the limit); claim-check — subscribers receive a signed, expiring link to the
   * stored body instead (needs runtime.http).
   */
  largeMessages: z.enum(['reject', 'claim-check']).default('reject'),
  /** claim-check: how long a link stays valid. */
  claimCheckTtl: duration.default(24 * 3_600_000),
  /** SNS envelopes (subscriptions with format 'sns'): SignatureVersion 1 signs with SHA1withRSA (SNS's default), 2 with SHA256withRSA. */
  signatureVersion: z
    .union([z.literal(1), z.literal(2)], {
      error: 'SignatureVersion 1 (SHA1withRSA, the default) or 2 (SHA256withRSA)',
    })
    .default(1),
});

import { z } from 'zod';
import type { SubscriptionSettings } from './sink.js';
import { FORMATS, deliveryPolicySchema, subscriptionCommon } from '../config/subscription-schema.js';

/**
 * A subscription's `settings` as stored (JSONB, written by apply and the SNS API from the config's parsed form),
 * checked with the config's own schemas when a process loads it: a key missing gets the config's default, a key of
 * the wrong type or out of range is an error. A protocol's `options` are checked by its sink (sinks/<protocol>/).
 */
export const storedSettingsSchema = z.looseObject({
  format: z.enum(FORMATS).default('envelope'),
  headers: z.record(z.string(), z.string()).default({}),
  deliveryPolicy: deliveryPolicySchema.prefault({}),
  maxConcurrency: subscriptionCommon.maxConcurrency,
  rawMessageDelivery: z.boolean().optional(),
  confirmation: z.enum(['none', 'required']).optional(),
  /** Stored as parsed: durations in milliseconds, null for a limit not set. */
  disableAfter: z
    .looseObject({
      failingFor: z.number().min(0).nullable().optional(),
      deadDeliveries: z.number().int().min(1).nullable().optional(),
    })
    .optional(),
  options: z.unknown().optional(),
});

export type StoredSettings = { ok: true; settings: SubscriptionSettings } | { ok: false; error: string };

/** Validates a subscription's stored settings; the error names the subscription, the key and the fix (never a value: headers may hold secrets). */
export function parseStoredSettings(subscription: string, raw: unknown): StoredSettings {
  const parsed = storedSettingsSchema.safeParse(raw ?? {});
  if (parsed.success) return { ok: true, settings: parsed.data as SubscriptionSettings };
  const problems = parsed.error.issues
    .map((i) => `settings.${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  return {
    ok: false,
    error: `subscription ${subscription} has invalid settings in the database (${problems}); it is not delivered until they are fixed: correct the subscription in the config and run \`rowcast apply\` (its deliveries wait, pending)`,
  };
}

import { z } from 'zod';
import { awsSchema } from './aws-schema.js';
import { captureName, captureSchema } from './capture-schema.js';
import { databaseSchema } from './database-schema.js';
import { functionName, functionSchema } from './function-schema.js';
import { runtimeSchema } from './runtime-schema.js';
import { sourceName, sourceSchema } from './source-schema.js';
import { subscriptionName, subscriptionSchema } from './subscription-schema.js';
import { topicName, topicSchema } from './topic-schema.js';

/**
 * The whole config: one schema per section, each in the file named after it. Names become parts of SQL
 * identifiers and URLs, so they are restricted; tables may be named anything.
 */
export const configSchema = z.strictObject({
  database: databaseSchema.prefault({}),
  topics: z.record(topicName, topicSchema).default({}),
  sources: z.record(sourceName, sourceSchema).default({}),
  captures: z.record(captureName, captureSchema).default({}),
  subscriptions: z.record(subscriptionName, subscriptionSchema).default({}),
  functions: z.record(functionName, functionSchema).default({}),
  runtime: runtimeSchema.prefault({}),
  aws: awsSchema.prefault({}),
});

/** What a user writes (defaults optional). */
export type RowcastConfigInput = z.input<typeof configSchema>;
/** What rowcast works with (defaults filled, durations in milliseconds). */
export type RowcastConfig = z.output<typeof configSchema>;

/** Typed helper for rowcast.config.ts files. */
export function defineConfig(config: RowcastConfigInput): RowcastConfigInput {
  return config;
}

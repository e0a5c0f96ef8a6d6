import { z } from 'zod';
import { envRef, optionsParser, resolveUrl, topicTemplate } from './settings-support.js';

/**
 * Options of a `redis` subscription: each message is appended to a Redis stream with XADD and counts as delivered
 * once Redis replied with the new entry's id. Consumers read it with XREAD / XREADGROUP; the entry's `id` field is
 * the message id (the same on every attempt), for them to deduplicate.
 *
 *   { topic: 'orders', protocol: 'redis', options: { url: { env: 'REDIS_URL' }, stream: 'rowcast:{topic}', maxLen: 100000 } }
 */

const REDIS_URL = /^rediss?:\/\/[^\s]*$/;
const redisUrl = z
  .string()
  .regex(REDIS_URL, 'a Redis URL, "redis://[user:password@]host:6379[/db]" (or rediss:// for TLS)')
  .refine((url) => URL.canParse(url), {
    message: 'not a valid URL; percent-encode special characters of the password',
  });

export const redisOptionsSchema = z.strictObject({
  /** The server; a password goes in the URL, so it may be { env: "VARIABLE" } to keep it out of the config. */
  url: z
    .union([redisUrl, envRef('REDIS_URL')], {
      error:
        'a Redis URL ("redis://[user:password@]host:6379[/db]"), or { env: "VARIABLE" } to read it from an environment variable',
    })
    .default('redis://127.0.0.1:6379'),
  /** The stream (key) each message is appended to; `{topic}` becomes the rowcast topic name. */
  stream: topicTemplate(z.string().min(1, 'must not be empty').max(1024, 'at most 1024 characters')).default(
    'rowcast:{topic}',
  ),
  /** Cap the stream at about this many entries (XADD MAXLEN); without it, the stream grows until trimmed by someone else. */
  maxLen: z
    .number({ error: 'a number of entries, e.g. 100000' })
    .int('a whole number of entries')
    .min(1, 'at least 1')
    .optional(),
  /** With maxLen: trim approximately ("MAXLEN ~", cheap, the default) or exactly ("MAXLEN ="). */
  approximate: z.boolean({ error: 'true or false' }).default(true),
});

export type RedisOptionsInput = z.input<typeof redisOptionsSchema>;
export type RedisOptions = z.output<typeof redisOptionsSchema>;

/** Validates a subscription's options; the error names each offending option ("options.stream: …"). */
export const parseRedisOptions = optionsParser('redis', redisOptionsSchema);

/** The server URL, read from the environment when it is { env }; throws an error naming the option (never the value). */
export function resolveRedisUrl(url: RedisOptions['url']): string {
  return resolveUrl(url, REDIS_URL, 'a Redis URL ("redis://[user:password@]host:6379[/db]")');
}

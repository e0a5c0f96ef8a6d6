import { z } from 'zod';
import { optionsParser, secretRef, topicTemplate } from './settings-support.js';

/**
 * Options of a `nats` subscription: each message is published to NATS JetStream and counts as delivered once the
 * stream acknowledged it (a PubAck). The message id travels as `Nats-Msg-Id`, so a redelivery within the stream's
 * duplicate window is dropped by the stream itself.
 *
 *   { topic: 'orders', protocol: 'nats', options: { servers: 'nats://nats:4222', subject: 'rowcast.{topic}',
 *     credentials: { user: 'rowcast', password: { env: 'NATS_PASSWORD' } } } }
 */

const secret = secretRef('NATS_PASSWORD');

const serverUrl = z
  .string()
  .regex(
    /^((nats|tls):\/\/)?(\[[0-9A-Fa-f:.]+\]|[^\s/:@[\]]+)(:\d{1,5})?$/,
    'a NATS server as "nats://host:port" (or "host:port"); put credentials in `credentials`, not in the URL',
  );

/** `{topic}` becomes the rowcast topic name (letters, digits, "-" and "_"). */
const subjectTemplate = topicTemplate(z.string().min(1, 'must not be empty')).refine(
  (s) =>
    s
      .replaceAll('{topic}', 'x')
      .split('.')
      .every((token) => token.length > 0 && !/[\s*>]/.test(token)),
  {
    message:
      'a NATS subject to publish to: dot-separated tokens without spaces or wildcards ("*", ">"), e.g. "rowcast.{topic}"',
  },
);

export const natsOptionsSchema = z.strictObject({
  /** One server or several of one cluster; a (re)connect tries them in random order. */
  servers: z
    .union([serverUrl, z.array(serverUrl).min(1, 'list at least one server')], {
      error: 'a server URL ("nats://host:4222") or a list of them',
    })
    .default('nats://127.0.0.1:4222'),
  /** The subject each message is published to; a JetStream stream must capture it. */
  subject: subjectTemplate.default('rowcast.{topic}'),
  /** Require TLS (a server that requires TLS gets it without this). */
  tls: z.boolean({ error: 'true or false' }).default(false),
  credentials: z
    .union(
      [
        z.strictObject({ user: z.string().min(1, 'must not be empty'), password: secret }),
        z.strictObject({ token: secret }),
        /** A .creds file (user JWT + nkey seed), as issued by `nsc` for decentralized auth. */
        z.strictObject({ credsFile: z.string().min(1, 'a path to a .creds file') }),
      ],
      {
        error:
          'write { user, password }, { token } or { credsFile: "/path/to/user.creds" } (password and token may be { env: "VARIABLE" })',
      },
    )
    .optional(),
});

export type NatsOptionsInput = z.input<typeof natsOptionsSchema>;
export type NatsOptions = z.output<typeof natsOptionsSchema>;

/** Validates a subscription's options; the error names each offending option ("options.subject: …"). */
export const parseNatsOptions = optionsParser('nats', natsOptionsSchema);

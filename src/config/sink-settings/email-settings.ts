import { z } from 'zod';

/**
 * Options of the `email` and `email-json` protocols: who the mail goes to, who it is from, and the SMTP server
 * (a relay or a provider's submission endpoint) that takes it. The SMTP password may come from the environment
 * ({ env: "NAME" }), so it stays out of the config file and the database.
 */

/** A bare address ("ops@example.com") or one with a display name ("Ops <ops@example.com>"). */
const ADDR_SPEC = /^[^\s@<>()",;:\\[\]]+@[^\s@<>()",;:\\[\]]+\.[^\s@<>()",;:\\[\]]+$/;
const NAME_ADDR = /^([^<>\r\n]*)<([^<>\s]+)>$/;

function isAddress(value: string): boolean {
  if (/[\r\n]/.test(value)) return false;
  const named = NAME_ADDR.exec(value.trim());
  return ADDR_SPEC.test(named ? named[2]! : value.trim());
}

const address = (what: string) =>
  z
    .string({ error: `${what}: write an email address, e.g. "ops@example.com" or "Ops <ops@example.com>"` })
    .trim()
    .refine(isAddress, {
      error: (issue) =>
        `${what}: ${JSON.stringify(issue.input)} is not an email address; write e.g. "ops@example.com" or "Ops <ops@example.com>"`,
    });

/** A message for a value of the wrong type only; other issues (an unknown key) keep zod's own message. */
const onlyType = (message: string) => (issue: { code?: string }) =>
  issue.code === 'invalid_type' ? message : undefined;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name, e.g. "SMTP_PASSWORD"');

/** A secret written inline or read from an environment variable of the delivering process. */
export const secretValueSchema = z.union(
  [z.string().min(1, 'the password is empty'), z.strictObject({ env: envName })],
  {
    error: 'write the password, or { env: "SMTP_PASSWORD" } to read it from an environment variable (recommended)',
  },
);

export const smtpSettingsSchema = z
  .strictObject(
    {
      host: z
        .string({ error: 'the SMTP server to hand mail to, e.g. "smtp.example.com"' })
        .trim()
        .min(1, 'the SMTP server to hand mail to, e.g. "smtp.example.com"'),
      /** 587 (submission, STARTTLS) unless secure is set, then 465. */
      port: z
        .number({ error: 'a TCP port number: 587 (STARTTLS), 465 (TLS) or 25' })
        .int()
        .min(1)
        .max(65535)
        .optional(),
      /** TLS from the start of the connection (port 465). false: plain, upgraded with STARTTLS when the server offers it. */
      secure: z.boolean({ error: 'true for TLS on connect (port 465), false for STARTTLS (port 587)' }).default(false),
      /** Refuse to send unless the connection is upgraded with STARTTLS (when secure is false). */
      requireTLS: z
        .boolean({ error: 'true to refuse to send unless the server upgrades the connection with STARTTLS' })
        .optional(),
      auth: z
        .strictObject(
          {
            user: z.string({ error: 'the SMTP user name' }).min(1, 'the SMTP user name is empty'),
            pass: secretValueSchema,
          },
          {
            error: onlyType(
              'write { user: "...", pass: { env: "SMTP_PASSWORD" } }, or leave auth out for a relay without authentication',
            ),
          },
        )
        .optional(),
    },
    {
      error: onlyType(
        'write the SMTP server: { host: "smtp.example.com", port: 587, auth: { user: "...", pass: { env: "SMTP_PASSWORD" } } }',
      ),
    },
  )
  .transform((smtp) => ({ ...smtp, port: smtp.port ?? (smtp.secure ? 465 : 587) }));

export const emailOptionsSchema = z.strictObject(
  {
    /** One recipient or a list of them; every message goes to all of them in one mail. */
    to: z
      .union(
        [
          address('to'),
          z
            .array(address('to'), { error: 'to: write an address or a list of addresses' })
            .min(1, 'to: the list of recipients is empty')
            .max(100, 'to: at most 100 recipients'),
        ],
        {
          error: 'to: write an address ("ops@example.com") or a list of addresses',
        },
      )
      .transform((to) => (Array.isArray(to) ? to : [to])),
    from: address('from'),
    replyTo: address('replyTo').optional(),
    /** Put in front of every subject, e.g. "[prod]". */
    subjectPrefix: z
      .string({ error: 'subjectPrefix: a short text such as "[prod]"' })
      .max(200, 'subjectPrefix: at most 200 characters')
      .refine((s) => !/[\r\n]/.test(s), 'subjectPrefix: must be a single line')
      .optional(),
    smtp: smtpSettingsSchema,
  },
  {
    error: onlyType(
      'write the email options: { to: "ops@example.com", from: "rowcast@example.com", smtp: { host: "smtp.example.com" } }',
    ),
  },
);

export type EmailOptionsInput = z.input<typeof emailOptionsSchema>;
export type EmailOptions = z.output<typeof emailOptionsSchema>;
export type SmtpSettings = EmailOptions['smtp'];
export type SecretValue = z.output<typeof secretValueSchema>;

/** One line per problem, each naming the option ("smtp.port: …"), for a dead delivery's error or a config check. */
export function describeEmailOptionsError(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((issue) => {
      const where = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
      return where ? `${where}: ${stripLeadingPath(issue.message, issue.path)}` : issue.message;
    })
    .join('; ');
}

/** Messages above already start with the option's name ("to: …"); do not say it twice. */
function stripLeadingPath(message: string, path: PropertyKey[]): string {
  const head = path.find((p) => typeof p === 'string');
  return typeof head === 'string' && message.startsWith(`${head}: `) ? message.slice(head.length + 2) : message;
}

import { z } from 'zod';
import { emailOptionsSchema, smtpSettingsSchema } from './sink-settings/email-settings.js';

/** How rowcast names itself in the ARNs of its AWS surface (src/model/arn.ts): labels only, no AWS account is used. */
export const awsSchema = z.strictObject({
  /** The region in ARNs rowcast makes (arn:aws:sns:<region>:…); clients may sign their requests for any region. */
  region: z
    .string()
    .regex(/^[a-z0-9-]{1,32}$/, 'a region name such as "us-east-1"')
    .default('us-east-1'),
  /** The 12-digit account id in ARNs rowcast makes. */
  accountId: z
    .string()
    .regex(/^\d{12}$/, '12 digits, e.g. "000000000000"')
    .default('000000000000'),
  /**
   * Who may call the SNS API (served by `rowcast start` with runtime.http): access key id → its secret access key,
   * or { env: "VARIABLE" } to read the secret from the environment. Requests are verified with AWS Signature V4;
   * without credentials every SNS request is refused.
   */
  credentials: z
    .record(
      z.string().regex(/^\w{16,128}$/, 'an access key id: 16–128 letters, digits or "_", e.g. "AKIAROWCASTEXAMPLE"'),
      z.union(
        [
          z.string().min(16, 'a secret access key of at least 16 characters'),
          z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
        ],
        {
          error:
            'write the secret access key, or { env: "VARIABLE" } to read it from an environment variable (recommended)',
        },
      ),
    )
    .optional(),
  /** Settings of the SNS API. */
  sns: z
    .strictObject({
      /** Subscribe with protocol email / email-json: the sender and SMTP server of those subscriptions' mails. */
      email: z.strictObject({ from: emailOptionsSchema.shape.from, smtp: smtpSettingsSchema }).optional(),
    })
    .optional(),
});

export type AwsConfig = z.output<typeof awsSchema>;
export type AwsConfigInput = z.input<typeof awsSchema>;

import type { Command } from 'commander';
import type { CliContext } from './cli-context.js';

/** `rowcast rotate-secret` (a webhook subscription's secret) and `rowcast rotate-signing-key` (SNS envelopes). */
export function addRotateCommands(program: Command, cli: CliContext): void {
  program
    .command('rotate-secret')
    .description(
      'give a webhook subscription a new signing secret; the old one stays valid for the overlap (two signatures per request meanwhile)',
    )
    .argument('<subscription>')
    .option(
      '--overlap <duration>',
      'how long the previous secret stays valid: "24h", "7d", or 0 to end it now (after a leak)',
      '24h',
    )
    .action(async (name: string, opts: { overlap: string }) => {
      const { rotateSecret } = await import('../../admin/actions/signing-secrets.js');
      const rotated = await cli.withPool(await cli.config(false), (pool) =>
        rotateSecret(pool, name, { overlap: opts.overlap }),
      );
      const until = rotated.previousSecretExpiresAt
        ? `until ${rotated.previousSecretExpiresAt.toISOString()}`
        : 'no longer (ended now)';
      console.error(
        `subscription ${name} signs with a new secret; the previous one stays valid ${until}. Give the new secret to the receiver:`,
      );
      console.log(rotated.secret);
    });

  program
    .command('rotate-signing-key')
    .description(
      "make a new key for SNS envelopes (format 'sns'); it signs from now on, and the old certificates stay served so messages signed before still verify",
    )
    .action(async () => {
      const { certificatePath, rotateSigningKey } = await import('../../delivery/sns-envelope/signing-keys.js');
      const key = await cli.withPool(await cli.config(false), (pool) => rotateSigningKey(pool));
      console.error(
        'running processes sign with the new key from their next reload of subscriptions (at once, on the notification this sends)',
      );
      console.log(`${key.certId} (served at ${certificatePath(key.certId)})`);
    });
}

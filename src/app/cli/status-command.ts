import type { Command } from 'commander';
import type { CliContext } from './cli-context.js';

/** `rowcast status`: counts per topic and subscription, the capture backlog, optionally the signing secrets. */
export function addStatusCommand(program: Command, cli: CliContext): void {
  program
    .command('status')
    .description('pending, in-flight and dead counts per topic and subscription, and the capture backlog')
    .option('--json', 'machine-readable output')
    .option('--secrets', "also print each subscription's signing secret")
    .action(async (opts: { json?: boolean; secrets?: boolean }) => {
      const { getStatus } = await import('../../admin/inspect/status.js');
      const { getSubscriptionSecrets } = await import('../../admin/actions/signing-secrets.js');
      const { formatStatus } = await import('./format-status.js');
      await cli.withPool(await cli.config(false), async (pool) => {
        const status = await getStatus(pool);
        const secrets = opts.secrets ? await getSubscriptionSecrets(pool) : undefined;
        if (opts.json) console.log(JSON.stringify(secrets ? { ...status, secrets } : status, null, 2));
        else {
          process.stdout.write(formatStatus(status));
          if (secrets) {
            for (const s of secrets) {
              const previous = s.previousSecretExpiresAt
                ? ` (the previous secret also signs until ${s.previousSecretExpiresAt.toISOString()})`
                : '';
              console.log(`secret ${s.name}: ${s.secret ?? '(none)'}${previous}`);
            }
          }
        }
      });
    });
}

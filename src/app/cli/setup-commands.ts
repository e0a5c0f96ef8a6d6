import type { Command } from 'commander';
import type { CliContext } from './cli-context.js';

/** `rowcast migrate` and `rowcast apply`: the schema, then the config's topics, subscriptions and captures. */
export function addSetupCommands(program: Command, cli: CliContext): void {
  program
    .command('migrate')
    .description(
      'create or update schema "rowcast" (numbered migrations under an advisory lock; safe to run concurrently)',
    )
    .action(async () => {
      const { migrate } = await import('../../store/migrate.js');
      const result = await cli.withPool(await cli.config(false), (pool) =>
        migrate(pool, (line) => console.error(line)),
      );
      console.log(
        result.applied.length
          ? `applied ${result.applied.join(', ')}; schema rowcast is at version ${result.current}`
          : `schema rowcast is up to date (version ${result.current})`,
      );
    });

  program
    .command('apply')
    .description('reconcile the database with the config: topics, subscriptions, capture triggers (all or nothing)')
    .option('--dry-run', 'print the SQL that would run, change nothing')
    .option(
      '--resync <source>',
      "a MySQL source whose recorded binlog position the server purged: reading restarts at the server's current position (changes in between are not read; backfill its captures); repeatable",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .action(async (opts: { dryRun?: boolean; resync?: string[] }) => {
      const { apply, changesOf, formatPlan } = await import('../../admin/config/apply.js');
      const cfg = (await cli.config(true))!;
      await cli.withPool(cfg, async (pool) => {
        const result = await apply(pool, cfg, {
          dryRun: opts.dryRun,
          resync: opts.resync,
          onProgress: (line) => console.error(line),
        });
        for (const w of result.warnings) console.error(`warning: ${w}`);
        if (opts.dryRun) process.stdout.write(formatPlan(result.steps));
        else
          console.log(
            result.steps.length
              ? `applied ${changesOf(result.steps).length} change(s)`
              : 'nothing to change: the database matches the config',
          );
      });
    });
}

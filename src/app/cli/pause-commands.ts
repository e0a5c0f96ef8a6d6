import type { Command } from 'commander';
import type { CliContext } from './cli-context.js';

/** `rowcast resume` and `rowcast pause`: a subscription's deliveries, or with --function a function's invocations. */
export function addPauseCommands(program: Command, cli: CliContext): void {
  program
    .command('resume')
    .description(
      're-activate a paused subscription, or a disabled one (its endpoint answered 410, or its disableAfter tripped); with --function, a paused function',
    )
    .argument('<subscription>', 'the subscription (with --function, a function)')
    .option('--function', "the name is a function's")
    .action(async (name: string, opts: { function?: boolean }) => {
      if (opts.function) {
        const { resumeFunction } = await import('../../admin/actions/function-actions.js');
        const fn = await cli.withPool(await cli.config(false), (pool) => resumeFunction(pool, name));
        console.log(`function ${name} is ${fn.state}`);
        return;
      }
      const { resumeSubscription } = await import('../../admin/actions/subscription-actions.js');
      const changed = await cli.withPool(await cli.config(false), (pool) => resumeSubscription(pool, name));
      console.log(changed ? `subscription ${name} is active` : `subscription ${name} was already active`);
    });

  program
    .command('pause')
    .description(
      "stop delivering to a subscription; its deliveries wait until it is resumed; with --function, stop running a function's invocations",
    )
    .argument('<subscription>', 'the subscription (with --function, a function)')
    .option('--function', "the name is a function's")
    .action(async (name: string, opts: { function?: boolean }) => {
      if (opts.function) {
        const { pauseFunction } = await import('../../admin/actions/function-actions.js');
        const fn = await cli.withPool(await cli.config(false), (pool) => pauseFunction(pool, name));
        console.log(`function ${name} is ${fn.state}`);
        return;
      }
      const { pauseSubscription } = await import('../../admin/actions/subscription-actions.js');
      const changed = await cli.withPool(await cli.config(false), (pool) => pauseSubscription(pool, name));
      console.log(changed ? `subscription ${name} is paused` : `subscription ${name} was already paused`);
    });
}

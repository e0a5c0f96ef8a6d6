import { Command, Option } from 'commander';
import { cliContext } from './cli-context.js';
import { addDeliveryCommands } from './delivery-commands.js';
import { describeFailure } from './error-message.js';
import { addFunctionCommands } from './function-commands.js';
import { addPauseCommands } from './pause-commands.js';
import { addResendCommands } from './resend-commands.js';
import { addRotateCommands } from './rotate-commands.js';
import { addSetupCommands } from './setup-commands.js';
import { addStartCommand } from './start-command.js';
import { addStatusCommand } from './status-command.js';

// Only the commands' names and options are defined here and in the command modules; each command imports what it
// runs (the config loader, pg, the admin operations, the runtime) when it runs, so `rowcast --help` and a mistyped
// option answer without loading them.
const program = new Command()
  .name('rowcast')
  .description('Near-real-time notifications from PostgreSQL changes: capture → topics → subscriptions.')
  .option(
    '-c, --config <file>',
    'config file (default: rowcast.config.{ts,mts,js,mjs,json,yaml,yml} in the current directory)',
  )
  .addOption(
    new Option(
      '-d, --database-url <url>',
      'PostgreSQL connection string (default: $DATABASE_URL, then database.url in the config)',
    ),
  )
  .option(
    '--progress',
    'report the progress of long operations (redrive, replay) on stderr even when it is not a terminal',
  )
  .showHelpAfterError('(run with --help for usage)');

const cli = cliContext(program);
// The order of `rowcast --help`.
addSetupCommands(program, cli);
addStartCommand(program, cli);
addStatusCommand(program, cli);
addResendCommands(program, cli);
addPauseCommands(program, cli);
addRotateCommands(program, cli);
addFunctionCommands(program, cli);
addDeliveryCommands(program, cli);

program.parseAsync().catch((err: unknown) => {
  const failure = describeFailure(err);
  if (failure) {
    console.error(`rowcast: ${failure.message}`);
    process.exit(failure.exitCode);
  }
  console.error(err);
  process.exit(1);
});

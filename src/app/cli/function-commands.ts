import { type Command, Option } from 'commander';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { CliContext } from './cli-context.js';

/** `rowcast invoke` (queue an Event invocation) and `rowcast invocations` (the history). */
export function addFunctionCommands(program: Command, cli: CliContext): void {
  program
    .command('invoke')
    .description("queue an asynchronous invocation of a function (as Lambda's Event invocation type)")
    .argument('<function>')
    .option('-p, --payload <json>', 'the event, as JSON', '{}')
    .action(async (name: string, opts: { payload: string }) => {
      let event: unknown;
      try {
        event = JSON.parse(opts.payload);
      } catch (err) {
        throw new RowcastError(
          ErrorCodes.CONFIG_INVALID,
          `--payload is not JSON (${(err as Error).message}); e.g. --payload '{"id": 1}'.`,
        );
      }
      const { invokeFunction } = await import('../../functions/invoke.js');
      const id = await cli.withPool(await cli.config(false), (pool) => invokeFunction(pool, name, event));
      console.log(`queued invocation ${id} of ${name}`);
    });

  program
    .command('invocations')
    .description('invocation history: status, attempts, duration, last error, published messages')
    .option('-f, --function <name>', 'only this function')
    .addOption(new Option('-s, --state <state>', 'only this state').choices(['pending', 'in_flight', 'done', 'failed']))
    .option('-n, --limit <n>', 'how many, newest first', '20')
    .option('--json', 'machine-readable output')
    .action(
      async (opts: {
        function?: string;
        state?: 'pending' | 'in_flight' | 'done' | 'failed';
        limit: string;
        json?: boolean;
      }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new RowcastError(
            ErrorCodes.CONFIG_INVALID,
            `--limit must be a positive whole number, not "${opts.limit}".`,
          );
        const { listInvocations } = await import('../../admin/inspect/invocations.js');
        const { formatInvocations } = await import('./format-status.js');
        const rows = await cli.withPool(await cli.config(false), (pool) =>
          listInvocations(pool, { function: opts.function, state: opts.state, limit }),
        );
        if (opts.json) console.log(JSON.stringify(rows, null, 2));
        else process.stdout.write(formatInvocations(rows));
      },
    );
}

import path from 'node:path';
import type { Command } from 'commander';
import type { RowcastRuntime } from '../runtime.js';
import type { CliContext } from './cli-context.js';
import { isTransientStartFailure } from './error-message.js';
import { boundHeapGrowth } from './heap-growth.js';

/** How long `rowcast start` keeps trying while PostgreSQL restarts under it. */
const START_RETRY_MS = 120_000;

/** `rowcast start`: the runtime in this process until SIGTERM/SIGINT. */
export function addStartCommand(program: Command, cli: CliContext): void {
  program
    .command('start')
    .description('route captured changes and deliver them until SIGTERM/SIGINT, then drain gracefully')
    .option('--no-migrate', 'fail instead of applying pending migrations')
    .action(async (opts: { migrate: boolean }) => {
      boundHeapGrowth();
      const { config: cfg, file } = await cli.configFile(false);
      const runtimeConfig = cfg?.runtime;
      const { createLogger } = await import('../../observability/logger.js');
      const log = createLogger(process.env.ROWCAST_LOG_LEVEL ?? runtimeConfig?.logLevel ?? 'info');
      // Running on defaults is legitimate (routing and deliveries need only the database), but never silently.
      if (file) log.info({ file }, 'config loaded');
      else {
        const { CONFIG_FILE_NAMES } = await import('../../admin/config/load-config.js');
        log.warn(
          { directory: process.cwd() },
          `no config file found: running on defaults: no functions, no HTTP server; pass --config <file> or create rowcast.config.{${CONFIG_FILE_NAMES.map((n) => path.extname(n).slice(1)).join(',')}} in the directory`,
        );
      }
      // Loaded here, not at the top: the runtime brings the HTTP server, tracing and every sink's client library,
      // which the other commands (and --help) need not wait for.
      const { startRowcast } = await import('../runtime.js');
      const start = () =>
        startRowcast({
          databaseUrl: cli.options().databaseUrl ?? process.env.DATABASE_URL ?? cfg?.database.url,
          runtime: runtimeConfig,
          functions: cfg?.functions,
          aws: cfg?.aws,
          sources: cfg?.sources,
          database: cfg?.database,
          logger: log,
          migrate: opts.migrate,
        });
      // PostgreSQL going away while this starts (a restart) is waited out, for up to START_RETRY_MS.
      let runtime: RowcastRuntime | undefined;
      const giveUpAt = Date.now() + START_RETRY_MS;
      for (let attempt = 1, restartSeen = false; !runtime; attempt++) {
        try {
          runtime = await start();
        } catch (err) {
          if (!isTransientStartFailure(err, restartSeen) || Date.now() > giveUpAt) throw err;
          restartSeen = true;
          const delay = Math.min(5000, 500 * attempt);
          log.warn(
            { err: (err as Error).message, attempt },
            `the database went away while starting; trying again in ${delay} ms`,
          );
          await new Promise((r) => setTimeout(r, delay));
        }
      }
      const started = runtime;
      let signals = 0;
      const shutdown = (signal: string) => {
        if (++signals > 1) {
          log.warn({ signal }, 'second signal: exiting without draining');
          process.exit(1);
        }
        log.info({ signal }, 'shutting down');
        started.stop().then(
          () => process.exit(0),
          (err: Error) => {
            log.error({ err: err.message }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
}

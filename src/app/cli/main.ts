import path from 'node:path';
import { Command, Option } from 'commander';
import { apply, changesOf, formatPlan } from '../../admin/apply.js';
import { type BackfillProgress, batchOption, runBackfill } from '../../capture/backfill.js';
import { parseDuration } from '../../config/duration.js';
import { certificatePath, rotateSigningKey } from '../../delivery/sns-envelope/signing-keys.js';
import { CONFIG_FILE_NAMES, findConfigFile, loadConfig } from '../../admin/load-config.js';
import type { RowcastConfig } from '../../config/schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { createLogger } from '../../observability/logger.js';
import type { RowcastRuntime } from '../runtime.js';
import { migrate } from '../../store/migrate.js';
import { createPool, type Pool, resolveDatabaseUrl } from '../../store/pool.js';
import { invokeFunction } from '../../functions/invoke.js';
import {
  getStatus,
  getSubscriptionSecrets,
  listInvocations,
  pauseSubscription,
  redrive,
  resumeSubscription,
  rotateSecret,
} from '../../admin/operations.js';
import { pauseFunction, replayCapture, resumeFunction } from '../../admin/admin-actions.js';
import { addDeliveryCommands } from './delivery-command.js';
import { formatInvocations, formatStatus } from './format-status.js';
import { formatDeliveries } from './format-deliveries.js';
import { searchDeliveries } from '../../admin/delivery-search.js';
import { describeFailure, isTransientStartFailure } from './error-message.js';
import { boundHeapGrowth } from './heap-growth.js';
import { progress } from './progress.js';

interface GlobalOptions {
  config?: string;
  databaseUrl?: string;
  progress?: boolean;
}

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

/** The config and its file, or nothing when the command can do without one and none exists. */
async function configFile(required: boolean): Promise<{ config?: RowcastConfig; file?: string }> {
  const opts = program.opts<GlobalOptions>();
  let file: string;
  try {
    file = findConfigFile(opts.config);
  } catch (err) {
    if (required || opts.config) throw err;
    return {};
  }
  return { config: await loadConfig({ file }), file };
}

/** The config, or undefined when the command can do without one and none exists. */
async function config(required: boolean): Promise<RowcastConfig | undefined> {
  return (await configFile(required)).config;
}

async function withPool<T>(cfg: RowcastConfig | undefined, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const url = resolveDatabaseUrl(
    program.opts<GlobalOptions>().databaseUrl ?? process.env.DATABASE_URL ?? cfg?.database.url,
  );
  // Connect timeout and keepalive as configured; no statement deadline: apply's DDL may wait for an application's
  // locks, and an operator can interrupt a command.
  const pool = createPool(url, {
    max: 4,
    applicationName: 'rowcast cli',
    database: { ...cfg?.database, statementTimeout: 0 },
  });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

program
  .command('migrate')
  .description(
    'create or update schema "rowcast" (numbered migrations under an advisory lock; safe to run concurrently)',
  )
  .action(async () => {
    const result = await withPool(await config(false), (pool) => migrate(pool, (line) => console.error(line)));
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
  .action(async (opts: { dryRun?: boolean }) => {
    const cfg = (await config(true))!;
    await withPool(cfg, async (pool) => {
      const result = await apply(pool, cfg, { dryRun: opts.dryRun, onProgress: (line) => console.error(line) });
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

/** How long `rowcast start` keeps trying while PostgreSQL restarts under it. */
const START_RETRY_MS = 120_000;

program
  .command('start')
  .description('route captured changes and deliver them until SIGTERM/SIGINT, then drain gracefully')
  .option('--no-migrate', 'fail instead of applying pending migrations')
  .action(async (opts: { migrate: boolean }) => {
    boundHeapGrowth();
    const { config: cfg, file } = await configFile(false);
    const runtimeConfig = cfg?.runtime;
    const log = createLogger(process.env.ROWCAST_LOG_LEVEL ?? runtimeConfig?.logLevel ?? 'info');
    // Running on defaults is legitimate (routing and deliveries need only the database), but never silently.
    if (file) log.info({ file }, 'config loaded');
    else {
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
        databaseUrl: program.opts<GlobalOptions>().databaseUrl ?? process.env.DATABASE_URL ?? cfg?.database.url,
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

program
  .command('status')
  .description('pending, in-flight and dead counts per topic and subscription, and the capture backlog')
  .option('--json', 'machine-readable output')
  .option('--secrets', "also print each subscription's signing secret")
  .action(async (opts: { json?: boolean; secrets?: boolean }) => {
    await withPool(await config(false), async (pool) => {
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

program
  .command('redrive')
  .description('put dead deliveries back to pending with a fresh attempt budget')
  .option('-s, --subscription <name>', 'only this subscription (default: all)')
  .option(
    '--since <time>',
    'only deliveries that went dead at or after this time: an ISO date, or a duration ago such as "2h"',
  )
  .option('--until <time>', 'only deliveries that went dead before this time (same forms)')
  .action(async (opts: { subscription?: string; since?: string; until?: string }) => {
    const since = opts.since === undefined ? undefined : parseTime('--since', opts.since);
    const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
    const shown = progress(program.opts<GlobalOptions>().progress);
    const n = await withPool(await config(false), (pool) =>
      redrive(pool, {
        subscription: opts.subscription,
        since,
        until,
        onProgress: (done) => shown.update(`re-queued ${done}…`),
      }),
    ).finally(() => shown.done());
    console.log(`re-queued ${n} dead deliver${n === 1 ? 'y' : 'ies'}`);
  });

program
  .command('replay')
  .description("send a capture's events again to one subscription of its topic, as the same messages (same ids)")
  .argument('<capture>')
  .requiredOption('-s, --subscription <name>', 'the subscription to send them to')
  .requiredOption(
    '--since <time>',
    'events captured at or after this time: an ISO date, or a duration ago such as "2h"',
  )
  .option('--until <time>', 'events captured before this time (same forms; default now)')
  .action(async (capture: string, opts: { subscription: string; since: string; until?: string }) => {
    const since = parseTime('--since', opts.since);
    const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
    const shown = progress(program.opts<GlobalOptions>().progress);
    const n = await withPool(await config(false), (pool) =>
      replayCapture(pool, capture, {
        subscription: opts.subscription,
        since,
        until,
        onProgress: (done) => shown.update(`queued ${done}…`),
      }),
    ).finally(() => shown.done());
    console.log(`queued ${n} deliver${n === 1 ? 'y' : 'ies'} to ${opts.subscription}`);
  });

program
  .command('backfill')
  .description(
    'send the rows a captured table holds now as events with op READ, batch by batch in primary-key order; resumes where an interrupted one stopped',
  )
  .argument('<capture>')
  .option(
    '--where <sql>',
    "only rows for which this SQL condition on the table's columns holds (e.g. \"created_at > now() - interval '30 days'\")",
  )
  .option('--batch <rows>', 'rows per batch, one transaction each (default 1000)')
  .option('--restart', 'start from the first row again, even if an earlier backfill stopped half-way')
  .action(async (capture: string, opts: { where?: string; batch?: string; restart?: boolean }) => {
    const batch = batchOption(opts.batch); // as the admin API checks it
    const shown = progress(program.opts<GlobalOptions>().progress);
    const started = Date.now();
    const line = (p: BackfillProgress) => {
      const total = p.rowsTotal ?? 0;
      const share = total ? Math.min(1, p.rowsSent / total) : 1;
      const width = 30;
      const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '-');
      const rate = Math.round(p.rowsSent / Math.max(0.001, (Date.now() - started) / 1000));
      return `backfill ${capture} [${bar}] ${p.rowsSent}/${total} rows (${Math.round(share * 100)}%, ${rate} rows/s)`;
    };
    // Ctrl-C stops after the current batch: the backfill resumes from there when run again.
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    const cfg = await config(false);
    const result = await withPool(cfg, (pool) =>
      runBackfill(pool, capture, {
        sources: cfg?.sources,
        where: opts.where,
        batch,
        restart: opts.restart,
        signal: stop.signal,
        onProgress: (p) => shown.update(line(p)),
      }),
    ).finally(() => shown.done());
    if (result.state === 'done')
      console.log(`backfilled ${result.rowsSent} row${result.rowsSent === 1 ? '' : 's'} of capture ${capture}`);
    else {
      console.log(
        `backfill of capture ${capture} stopped after ${result.rowsSent} rows; run the same command again to resume`,
      );
      process.exitCode = 1;
    }
  });

program
  .command('resume')
  .description(
    're-activate a paused subscription, or a disabled one (its endpoint answered 410, or its disableAfter tripped); with --function, a paused function',
  )
  .argument('<subscription>', 'the subscription (with --function, a function)')
  .option('--function', "the name is a function's")
  .action(async (name: string, opts: { function?: boolean }) => {
    if (opts.function) {
      const fn = await withPool(await config(false), (pool) => resumeFunction(pool, name));
      console.log(`function ${name} is ${fn.state}`);
      return;
    }
    const changed = await withPool(await config(false), (pool) => resumeSubscription(pool, name));
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
      const fn = await withPool(await config(false), (pool) => pauseFunction(pool, name));
      console.log(`function ${name} is ${fn.state}`);
      return;
    }
    const changed = await withPool(await config(false), (pool) => pauseSubscription(pool, name));
    console.log(changed ? `subscription ${name} is paused` : `subscription ${name} was already paused`);
  });

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
    const rotated = await withPool(await config(false), (pool) => rotateSecret(pool, name, { overlap: opts.overlap }));
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
    const key = await withPool(await config(false), (pool) => rotateSigningKey(pool));
    console.error(
      'running processes sign with the new key from their next reload of subscriptions (at once, on the notification this sends)',
    );
    console.log(`${key.certId} (served at ${certificatePath(key.certId)})`);
  });

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
    const id = await withPool(await config(false), (pool) => invokeFunction(pool, name, event));
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
      const rows = await withPool(await config(false), (pool) =>
        listInvocations(pool, { function: opts.function, state: opts.state, limit }),
      );
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else process.stdout.write(formatInvocations(rows));
    },
  );

addDeliveryCommands(program, async (fn) => withPool(await config(false), fn));
program
  .command('deliveries')
  .description(
    'find deliveries: of a captured row (--row-key), a capture, an operation, a subscription, a state, a time range',
  )
  .option('-s, --subscription <name>', 'only this subscription')
  .option('-t, --topic <name>', 'only this topic')
  .option('--capture <name>', 'only messages of this capture')
  .option('--op <op>', 'only this operation: INSERT, UPDATE, DELETE or TRUNCATE')
  .option(
    '-k, --row-key <key>',
    'only the deliveries of this row: its primary key, as id=42, tenant=a,id=42 or {"id": 42}',
  )
  .addOption(new Option('--state <state>', 'only this state').choices(['pending', 'in_flight', 'done', 'dead']))
  .option('--since <time>', 'created at or after this time: an ISO date, or a duration ago such as "2h"')
  .option('--until <time>', 'created before this time (same forms)')
  .option('-n, --limit <n>', 'how many, newest first', '20')
  .option('--json', 'machine-readable output')
  .action(
    async (opts: {
      subscription?: string;
      topic?: string;
      capture?: string;
      op?: string;
      rowKey?: string;
      state?: 'pending' | 'in_flight' | 'done' | 'dead';
      since?: string;
      until?: string;
      limit: string;
      json?: boolean;
    }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        throw new RowcastError(
          ErrorCodes.CONFIG_INVALID,
          `--limit must be a whole number from 1 to 500, not "${opts.limit}".`,
        );
      const since = opts.since === undefined ? undefined : parseTime('--since', opts.since);
      const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
      const page = await withPool(await config(false), (pool) =>
        searchDeliveries(pool, {
          subscription: opts.subscription,
          topic: opts.topic,
          capture: opts.capture,
          op: opts.op,
          rowKey: opts.rowKey,
          status: opts.state,
          since,
          until,
          limit,
        }),
      );
      if (opts.json) console.log(JSON.stringify(page.items, null, 2));
      else process.stdout.write(formatDeliveries(page.items, page.nextCursor !== null));
    },
  );

/** "2026-11-27T10:00:00Z" or a duration ago ("90m", "2h"). */
function parseTime(flag: string, value: string): Date {
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(Date.now() - ago);
  const at = Date.parse(value);
  if (Number.isNaN(at))
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `${flag} "${value}" is neither a date (2026-11-27T10:00:00Z) nor a duration ago (90m, 2h, 7d).`,
    );
  return new Date(at);
}

program.parseAsync().catch((err: unknown) => {
  const failure = describeFailure(err);
  if (failure) {
    console.error(`rowcast: ${failure.message}`);
    process.exit(failure.exitCode);
  }
  console.error(err);
  process.exit(1);
});

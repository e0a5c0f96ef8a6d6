import type { Command } from 'commander';
import type { BackfillProgress } from '../../capture/backfill.js';
import type { CliContext } from './cli-context.js';
import { progress } from './progress.js';

/**
 * The commands that send messages again, with a progress line: `rowcast redrive` (dead deliveries), `rowcast
 * replay` (a capture's past events to one subscription) and `rowcast backfill` (the rows a table holds now).
 */
export function addResendCommands(program: Command, cli: CliContext): void {
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
      const { parseTime } = await import('./parse-time.js');
      const { redrive } = await import('../../admin/actions/delivery-actions.js');
      const since = opts.since === undefined ? undefined : parseTime('--since', opts.since);
      const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
      const shown = progress(cli.options().progress);
      const n = await cli
        .withPool(await cli.config(false), (pool) =>
          redrive(pool, {
            subscription: opts.subscription,
            since,
            until,
            onProgress: (done) => shown.update(`re-queued ${done}…`),
          }),
        )
        .finally(() => shown.done());
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
      const { parseTime } = await import('./parse-time.js');
      const { replayCapture } = await import('../../admin/actions/replay-capture.js');
      const since = parseTime('--since', opts.since);
      const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
      const shown = progress(cli.options().progress);
      const n = await cli
        .withPool(await cli.config(false), (pool) =>
          replayCapture(pool, capture, {
            subscription: opts.subscription,
            since,
            until,
            onProgress: (done) => shown.update(`queued ${done}…`),
          }),
        )
        .finally(() => shown.done());
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
      const { batchOption, runBackfill } = await import('../../capture/backfill.js');
      const batch = batchOption(opts.batch); // as the admin API checks it
      const shown = progress(cli.options().progress);
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
      const cfg = await cli.config(false);
      const result = await cli
        .withPool(cfg, (pool) =>
          runBackfill(pool, capture, {
            sources: cfg?.sources,
            where: opts.where,
            batch,
            restart: opts.restart,
            signal: stop.signal,
            onProgress: (p) => shown.update(line(p)),
          }),
        )
        .finally(() => shown.done());
      if (result.state === 'done')
        console.log(`backfilled ${result.rowsSent} row${result.rowsSent === 1 ? '' : 's'} of capture ${capture}`);
      else {
        console.log(
          `backfill of capture ${capture} stopped after ${result.rowsSent} rows; run the same command again to resume`,
        );
        process.exitCode = 1;
      }
    });
}

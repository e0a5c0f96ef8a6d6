import { type Command, Option } from 'commander';
import type { Pool } from '../../store/pool.js';
import type { AttemptLogEntry } from '../../model/attempt-log.js';
import type { DeliveryDetail } from '../../admin/inspect/deliveries.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { CliContext } from './cli-context.js';

/**
 * `rowcast delivery <id> [--json]` (one delivery with its attempt log), `rowcast resend <id>` and `rowcast
 * deliveries` (the search).
 */
export function addDeliveryCommands(program: Command, cli: CliContext): void {
  const withPool = async <T>(fn: (pool: Pool) => Promise<T>): Promise<T> => cli.withPool(await cli.config(false), fn);
  program
    .command('delivery')
    .description(
      'one delivery: its state, message and attempt log (each HTTP attempt with the request headers sent and the response)',
    )
    .argument('<id>', 'the delivery id (rowcast status, the dashboard, or /api/deliveries)')
    .option('--json', 'machine-readable output (as GET /api/deliveries/{id})')
    .action(async (id: string, opts: { json?: boolean }) => {
      const { getDelivery } = await import('../../admin/inspect/deliveries.js');
      const delivery = await withPool((pool) => getDelivery(pool, id));
      if (opts.json) console.log(JSON.stringify(delivery, null, 2));
      else process.stdout.write(formatDelivery(delivery));
    });

  program
    .command('resend')
    .description(
      'send a done (or dead) delivery again to its subscription, as the same message (same webhook-id), with a fresh attempt budget',
    )
    .argument('<id>', 'the delivery id')
    .action(async (id: string) => {
      const { resendDelivery } = await import('../../admin/actions/delivery-actions.js');
      await withPool((pool) => resendDelivery(pool, id));
      console.log(`delivery ${id} is pending again; follow it with: rowcast delivery ${id}`);
    });

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
        const { parseTime } = await import('./parse-time.js');
        const since = opts.since === undefined ? undefined : parseTime('--since', opts.since);
        const until = opts.until === undefined ? undefined : parseTime('--until', opts.until);
        const { searchDeliveries } = await import('../../admin/inspect/delivery-search.js');
        const { formatDeliveries } = await import('./format-deliveries.js');
        const page = await withPool((pool) =>
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
}

const iso = (at: Date | string | null): string => (at === null ? '-' : new Date(at).toISOString());

const HISTORY: Record<string, string> = {
  redriven: 'redriven: a new series of attempts',
  resent: 'resent: a new series of attempts, same message (same webhook-id)',
  replayed: 'replayed: a new series of attempts, same message (same webhook-id)',
};

/** rowcast delivery as people read it: the facts, then each attempt with its request (>) and response (<). */
export function formatDelivery(d: DeliveryDetail): string {
  const lines = [
    `delivery ${d.id}: ${d.state}, ${d.attempts} attempt${d.attempts === 1 ? '' : 's'} in this series`,
    `subscription ${d.subscription} (topic ${d.topic}); message ${d.messageId}`,
    `created ${iso(d.createdAt)}, updated ${iso(d.updatedAt)}, delivered ${iso(d.deliveredAt)}`,
    '',
  ];
  // A cursor writes nothing for a message it delivered: where it stands is the delivery's record.
  if (d.cursor) lines.push(`read through a cursor, which has passed seq ${d.cursor.passed}; it records no attempts`);
  else if (!d.attemptLog.length) lines.push('no attempts recorded yet');
  for (const a of d.attemptLog) lines.push(...formatEntry(a));
  return `${lines.join('\n')}\n`;
}

function formatEntry(a: AttemptLogEntry): string[] {
  if (a.attempt === null) return [`-- ${iso(a.at)} ${HISTORY[a.outcome] ?? a.outcome}`];
  const head = [
    `attempt ${a.attempt}`,
    iso(a.at),
    a.outcome,
    a.status ?? '-',
    a.durationMs === null || a.durationMs === undefined ? '' : `${a.durationMs} ms`,
  ]
    .join('  ')
    .trimEnd();
  const out = [head];
  if (a.error) out.push(`  error: ${a.error}`);
  for (const [name, value] of Object.entries(a.request?.headers ?? {})) out.push(`  > ${name}: ${value}`);
  if (a.response) {
    out.push(`  < HTTP ${a.response.status}`);
    for (const [name, value] of Object.entries(a.response.headers)) out.push(`  < ${name}: ${value}`);
    if (a.response.body)
      out.push(
        `  < body${a.response.bodyTruncated ? ' (first 1 KB)' : ''}: ${a.response.body.replace(/\n/g, '\n    ')}`,
      );
  } else if (a.request) out.push('  < no response');
  return out;
}

import type { Command } from 'commander';
import type { Pool } from '../../store/pool.js';
import type { AttemptLogEntry } from '../../model/attempt-log.js';
import { type DeliveryDetail, getDelivery } from '../../admin/inspect/deliveries.js';
import { resendDelivery } from '../../admin/actions/delivery-actions.js';

/** How a command of main.ts gets a pool (with the config's database and the global options). */
export type WithPool = <T>(fn: (pool: Pool) => Promise<T>) => Promise<T>;

/** `rowcast delivery <id> [--json]` (one delivery with its attempt log) and `rowcast resend <id>`. */
export function addDeliveryCommands(program: Command, withPool: WithPool): void {
  program
    .command('delivery')
    .description(
      'one delivery: its state, message and attempt log (each HTTP attempt with the request headers sent and the response)',
    )
    .argument('<id>', 'the delivery id (rowcast status, the dashboard, or /api/deliveries)')
    .option('--json', 'machine-readable output (as GET /api/deliveries/{id})')
    .action(async (id: string, opts: { json?: boolean }) => {
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
      await withPool((pool) => resendDelivery(pool, id));
      console.log(`delivery ${id} is pending again; follow it with: rowcast delivery ${id}`);
    });
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
  if (!d.attemptLog.length) lines.push('no attempts recorded yet');
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

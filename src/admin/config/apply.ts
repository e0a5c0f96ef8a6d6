import type { RowcastConfig } from '../../config/schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { redactSecrets } from '../../observability/redact.js';
import { assertMigrated } from '../../store/migrate.js';
import { ident, literal } from '../../store/sql.js';
import type { Pool } from '../../store/pool.js';
import { APPLY_LOCK } from '../../store/advisory-locks.js';
import { dropSlots, isLogical, logicalDecodingProblems, PUBLICATION, slotName } from '../../capture/logical-ddl.js';
import type { PlanStep, SourceInstall } from '../../capture/plan-step.js';
import { applyWarnings } from './apply-warnings.js';
import { planApply } from './plan.js';
import { currentDatabase, publicationExists, slotExists } from './plan-publication.js';

export type { PlanStep } from '../../capture/plan-step.js';
// The library has always exported generateSecret beside apply (a secret to put in a config).
export { generateSecret } from '../../delivery/sinks/http/webhook-secret.js';

export interface ApplyResult {
  steps: PlanStep[];
  applied: boolean;
  /** What the config declares that is valid but known to fail (private endpoints, numeric filters on strings…). */
  warnings: string[];
}

/**
 * Reconciles the database with the config in one transaction: topics, subscriptions and capture triggers are
 * created, updated or removed so that they match. Either everything is applied or nothing is.
 */
export async function apply(
  pool: Pool,
  config: RowcastConfig,
  options: {
    dryRun?: boolean;
    onProgress?: (line: string) => void;
    /** MySQL sources whose reading restarts at the server's current position (after their position was purged). */
    resync?: string[];
  } = {},
): Promise<ApplyResult> {
  await assertMigrated(pool);
  const client = await pool.connect();
  const slot = slotName(await currentDatabase(client));
  const logical = Object.values(config.captures).some((c) => c.source === undefined && isLogical(c));
  const created: string[] = [];
  try {
    // One apply at a time per database, from the slot and publication made first to the commit.
    await client.query('SELECT pg_advisory_lock($1)', [APPLY_LOCK]);
    // Logical captures stream from a replication slot that must exist before their tables join the publication:
    // every change committed after this apply is then in the slot. The publication must exist before the slot
    // (decoding looks it up as of each decoded transaction), so both are made first, each committed on its own:
    // the publication empty (the apply's transaction names its tables), then the slot, from another connection
    // while this one holds no transaction (a new slot waits for running transactions to end).
    if (
      logical &&
      !options.dryRun &&
      !(await logicalDecodingProblems(client)).length &&
      !(await slotExists(client, slot))
    ) {
      if (!(await publicationExists(client))) {
        await client.query(`CREATE PUBLICATION ${ident(PUBLICATION)} WITH (publish_via_partition_root = true)`);
        created.push(`DROP PUBLICATION IF EXISTS ${ident(PUBLICATION)}`);
      }
      options.onProgress?.(`creating replication slot ${slot} (waits for running transactions to end)`);
      await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      created.push(`SELECT pg_drop_replication_slot(${literal(slot)})`);
    }
    await client.query('BEGIN');
    const installs: SourceInstall[] = [];
    const steps = await planApply(client, config, installs, options.resync ?? []);
    const warnings = await applyWarnings(client, config);
    if (options.dryRun) {
      await client.query('ROLLBACK');
      return { steps, applied: false, warnings };
    }
    const changes = changesOf(steps).length;
    let change = 0;
    for (const [i, step] of steps.entries()) {
      // A change may take several statements (a capture's function and triggers): reported once, at its first.
      if (i === 0 || steps[i - 1]!.summary !== step.summary)
        options.onProgress?.(`[${++change}/${changes}] ${step.summary}`);
      try {
        await client.query(step.sql, step.params);
      } catch (err) {
        throw new RowcastError(
          ErrorCodes.CAPTURE_INVALID,
          `apply failed at "${step.summary}" and nothing was applied: ${(err as Error).message}`,
          [],
          { cause: err },
        );
      }
    }
    // What sources need on their servers (idempotent, so a rollback of the store's part leaves no harm).
    for (const install of installs) {
      options.onProgress?.(install.summary);
      const note = await install.run();
      if (note) options.onProgress?.(note);
    }
    // Running processes reload topics and subscriptions when they hear this.
    if (steps.length) await client.query(`SELECT pg_notify('rowcast_config', '')`);
    await client.query('COMMIT');
    // No logical capture left: the slot would keep write-ahead log for nobody. Its reader (if one streams) is
    // disconnected first; it finds no logical capture and waits for one.
    if (!logical && (await slotExists(client, slot))) {
      await dropSlots(client, { slot });
      options.onProgress?.(`dropped replication slot ${slot} (no logical capture left)`);
    }
    return { steps, applied: true, warnings };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    // Nothing half-applied: a slot made for captures that were not applied would keep write-ahead log forever.
    for (const undo of created.reverse()) await pool.query(undo).catch(() => {});
    throw err;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [APPLY_LOCK]).catch(() => {});
    client.release();
  }
}

/** The changes a plan makes, one line each: consecutive statements of one change share its summary. */
export function changesOf(steps: PlanStep[]): string[] {
  return steps.filter((s, i) => i === 0 || steps[i - 1]!.summary !== s.summary).map((s) => s.summary);
}

/**
 * Prints a plan as SQL, secrets masked (signing secrets, and passwords, tokens and header values in settings),
 * ending with the list of changes.
 */
export function formatPlan(steps: PlanStep[]): string {
  if (!steps.length) return '-- nothing to change: the database matches the config\n';
  const sql = steps
    .map((s) => {
      const params = s.params?.map((p, i) =>
        s.secretParams?.includes(i) && p !== null ? '<secret>' : redactSecrets(p),
      );
      return `-- ${s.summary}\n${s.sql};${params ? `\n-- parameters: ${JSON.stringify(params)}` : ''}\n`;
    })
    .join('\n');
  const changes = changesOf(steps);
  const summary = `-- would apply ${changes.length} change${changes.length === 1 ? '' : 's'} (nothing was changed; run apply without --dry-run to apply them):\n${changes.map((c) => `--   ${c}\n`).join('')}`;
  return `${sql}\n${summary}`;
}

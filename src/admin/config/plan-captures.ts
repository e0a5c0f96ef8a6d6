import { createHash } from 'node:crypto';
import type { RowcastConfig } from '../../config/schema.js';
import type { PoolClient } from '../../store/pool.js';
import { readTableInfo, tableName } from '../../capture/table-info.js';
import { isLogical, logicalCaptureDdl } from '../../capture/logical-ddl.js';
import { captureDdl, dropCaptureDdl } from '../../capture/trigger-ddl.js';
import type { PlanStep } from '../../capture/plan-step.js';
import { describeTarget, recordCaptureStep } from '../../capture/record-capture-step.js';
import type { CaptureRow } from './stored-config.js';

/**
 * The steps that make the store's own captures (trigger and logical, not a source's) match the config: triggers or
 * the logical capture function installed on each table, REPLICA IDENTITY FULL where logical decoding needs old
 * rows, and what a removed, moved or switched capture left behind dropped. The publication is planned apart
 * (plan-publication.ts), as it lists the tables of every logical capture at once.
 */
export async function planCaptures(
  client: PoolClient,
  config: RowcastConfig,
  captures: Map<string, CaptureRow>,
  problems: string[],
): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  for (const [name, capture] of Object.entries(config.captures)) {
    if (capture.source !== undefined) continue;
    const where = `captures.${name}.table`;
    const { schema, name: table } = tableName(capture.table, where);
    const info = await readTableInfo(client, schema, table);
    if (!info) {
      problems.push(
        `${where}: table ${schema}.${table} does not exist or is not visible to this database user; create it first, fix the name, or grant access.`,
      );
      continue;
    }
    const missing = (capture.columns ?? []).filter((c) => !info.columns.some((ic) => ic.name === c));
    if (missing.length) {
      problems.push(
        `captures.${name}.columns: ${schema}.${table} has no column ${missing.map((c) => `"${c}"`).join(', ')}; its columns are ${info.columns.map((c) => c.name).join(', ')}.`,
      );
      continue;
    }
    const ddl = isLogical(capture) ? logicalCaptureDdl(name, capture, info) : captureDdl(name, capture, info);
    const hash = createHash('sha256')
      .update(JSON.stringify([schema, table, capture.subject ?? null, capture.function ?? null, ddl.install]))
      .digest('hex');
    const existing = captures.get(name);
    // Unchanged, unless its triggers went behind rowcast's back (DROP … CASCADE, a table dropped and re-created).
    const triggersGone =
      existing?.settings.hash === hash ? !(await triggersPresent(client, info.oid, existing.triggers)) : undefined;
    // Old rows (DELETE's row, diffs, keys, unchanged large values of an UPDATE) are in the log only with REPLICA
    // IDENTITY FULL, on the table and on each partition (a partition logs its own old rows): checked on every apply,
    // so that a partition added later, or an identity changed behind rowcast's back, is set again.
    const needIdentity =
      isLogical(capture) && capture.operations.some((op) => op === 'UPDATE' || op === 'DELETE')
        ? await withoutFullIdentity(client, info.oid)
        : [];
    const identitySteps = needIdentity.map((t) => ({
      summary: `~ capture ${name}: REPLICA IDENTITY FULL on ${t} (old rows in the write-ahead log)`,
      sql: `ALTER TABLE ${t} REPLICA IDENTITY FULL`,
    }));
    if (triggersGone === false) {
      steps.push(...identitySteps);
      continue;
    }
    const label = `${existing ? '~' : '+'} capture ${name} on ${schema}.${table} (${capture.operations.join(', ')} → ${describeTarget(capture)}, payload ${capture.payload})${triggersGone ? ': its triggers are missing, reinstalled' : ''}`;
    if (existing && (existing.schema_name !== schema || existing.table_name !== table)) {
      for (const sql of await dropInstalled(client, existing))
        steps.push({ summary: `${label}: remove from ${existing.schema_name}.${existing.table_name}`, sql });
    } else if (existing?.function_name && existing.function_name !== ddl.functionName) {
      // Switched between a trigger and logical capture: the old one goes entirely, in this same transaction.
      for (const sql of dropCaptureDdl(
        { schema, table, functionName: existing.function_name, triggers: existing.triggers },
        true,
      )) {
        steps.push({
          summary: `${label}: remove its ${existing.triggers.length ? 'triggers' : 'logical capture function'}`,
          sql,
        });
      }
    } else if (existing) {
      // Operations that were dropped from the config lose their triggers.
      for (const t of existing.triggers.filter((t) => !ddl.triggers.includes(t))) {
        steps.push({
          summary: `${label}: remove trigger ${t}`,
          sql: dropCaptureDdl({ schema, table, functionName: existing.function_name, triggers: [t] }, true)[0]!,
        });
      }
    }
    steps.push(...identitySteps);
    for (const sql of ddl.install) steps.push({ summary: label, sql });
    steps.push(
      recordCaptureStep(label, {
        name,
        schema,
        table,
        capture,
        settings: { hash, capture },
        functionName: ddl.functionName,
        triggers: ddl.triggers,
      }),
    );
  }
  for (const [name, existing] of captures) {
    if (config.captures[name]) continue;
    const label = `- capture ${name} on ${existing.schema_name}.${existing.table_name}`;
    // A source's capture has nothing installed in the store.
    if (!existing.function_name) {
      steps.push({ summary: label, sql: 'DELETE FROM rowcast.captures WHERE name = $1', params: [name] });
      continue;
    }
    for (const sql of await dropInstalled(client, existing)) steps.push({ summary: label, sql });
    steps.push({ summary: label, sql: 'DELETE FROM rowcast.captures WHERE name = $1', params: [name] });
  }

  return steps;
}

/**
 * What removes a stored capture from the table it was installed on: its triggers and function, or only its
 * function when the table is gone (its triggers went with it).
 */
async function dropInstalled(client: PoolClient, existing: CaptureRow): Promise<string[]> {
  const gone = !(await readTableInfo(client, existing.schema_name, existing.table_name));
  return dropCaptureDdl(
    {
      schema: existing.schema_name,
      table: existing.table_name,
      functionName: existing.function_name,
      triggers: existing.triggers,
    },
    !gone,
  );
}

/** The table and its partitions (quoted, qualified) whose REPLICA IDENTITY is not FULL. */
async function withoutFullIdentity(client: PoolClient, tableOid: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    // pg_partition_tree() has no rows for a table that is not partitioned: the table itself is added.
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM (SELECT $1::oid AS relid, 0 AS level UNION SELECT relid, level FROM pg_partition_tree($1::oid::regclass)) AS t
       JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relreplident <> 'f' ORDER BY t.level, 1`,
    [tableOid],
  );
  return rows.map((r) => r.name);
}

/** Whether every one of a capture's triggers is (still) on its table. */
async function triggersPresent(client: PoolClient, tableOid: number, triggers: string[]): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1 AND tgname = ANY($2::text[])',
    [tableOid, triggers],
  );
  return rows[0]!.n === triggers.length;
}

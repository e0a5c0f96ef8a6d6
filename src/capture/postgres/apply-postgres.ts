import { createHash } from 'node:crypto';
import type { CaptureConfig } from '../../config/capture-schema.js';
import type { RowcastConfig } from '../../config/schema.js';
import type { PoolClient } from '../../store/pool.js';
import { ident, literal, qualified } from '../../store/sql.js';
import type { PlanStep, SourceInstall } from '../plan-step.js';
import { describeTarget, recordCaptureStep } from '../record-capture-step.js';
import { connectPostgresSource, postgresSourceProblems, readSourceTable, sourceObjects } from './postgres-source.js';

/** What apply knows of the captures the store holds. */
type Installed = Map<string, { settings: { hash?: string }; function_name: string }>;

/**
 * Plans the captures of PostgreSQL sources: checks each source (wal_level, REPLICATION, the tables, their
 * ownership) and registers its captures in rowcast.captures. On the source itself — once the plan is applied —
 * it makes the publication and the slot and sets REPLICA IDENTITY FULL where old rows are needed (installs);
 * nothing else of rowcast is written there.
 */
export async function planPostgresSources(
  client: PoolClient,
  config: RowcastConfig,
  installed: Installed,
  problems: string[],
  installs: SourceInstall[],
): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  const bySource = new Map<string, { name: string; capture: CaptureConfig; schema: string; table: string }[]>();
  for (const [name, capture] of Object.entries(config.captures)) {
    if (capture.source === undefined || config.sources[capture.source]?.kind !== 'postgres') continue;
    const where = `captures.${name}`;
    if (capture.mode !== 'row')
      problems.push(
        `${where}.mode: a PostgreSQL source is always read by logical replication from its own slot; omit mode.`,
      );
    if (capture.when)
      problems.push(
        `${where}.when: conditions are evaluated by the store's capture functions, which a PostgreSQL source does not use; omit when and filter with a subscription's filterPolicy.`,
      );
    const parts =
      typeof capture.table === 'object' ? [capture.table.schema, capture.table.name] : capture.table.split('.');
    if (parts.length === 1) parts.unshift('public');
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      problems.push(
        `${where}.table: write the table as "table", "schema.table" or { schema, name }, not "${typeof capture.table === 'object' ? capture.table.name : capture.table}".`,
      );
      continue;
    }
    bySource.set(capture.source, [
      ...(bySource.get(capture.source) ?? []),
      { name, capture, schema: parts[0], table: parts[1] },
    ]);
  }

  for (const [sourceName, source] of Object.entries(config.sources)) {
    if (source.kind !== 'postgres') continue;
    const captures = bySource.get(sourceName) ?? [];
    const { slot, publication } = sourceObjects(sourceName, source);
    let c;
    try {
      c = await connectPostgresSource(sourceName, source);
    } catch (err) {
      // A declared source without captures may be unreachable: nothing to do there.
      if (captures.length) problems.push((err as Error).message);
      continue;
    }
    try {
      const hasPublication =
        (await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication])).rowCount! > 0;
      const hasSlot = (await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount! > 0;
      if (!captures.length) {
        // No capture left: the slot would keep the source's write-ahead log for nobody.
        if (hasSlot || hasPublication) {
          installs.push({
            summary: `source ${sourceName}: drop slot ${slot} and publication ${publication} (no capture left)`,
            run: async () => {
              const conn = await connectPostgresSource(sourceName, source);
              try {
                await conn.query(
                  `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
                  [slot],
                );
                await dropSlotRetrying(conn, slot);
                await conn.query(`DROP PUBLICATION IF EXISTS ${ident(publication)}`);
              } finally {
                await conn.end();
              }
            },
          });
          steps.push({
            summary: `source ${sourceName}: forget its position`,
            sql: 'DELETE FROM rowcast.source_progress WHERE source = $1',
            params: [sourceName],
          });
        }
        continue;
      }
      const serverProblems = await postgresSourceProblems(sourceName, c, hasPublication);
      problems.push(...serverProblems);
      if (serverProblems.length) continue;
      const identity = new Set<string>();
      const tables = new Set<string>();
      let ok = true;
      for (const { name, capture, schema, table } of captures) {
        const info = await readSourceTable(c, schema, table);
        if (!info) {
          problems.push(
            `captures.${name}.table: source ${sourceName} has no table ${schema}.${table} visible to its user; create it first, fix the name, or grant access.`,
          );
          ok = false;
          continue;
        }
        const missing = (capture.columns ?? []).filter((col) => !info.columns.includes(col));
        if (missing.length) {
          problems.push(
            `captures.${name}.columns: ${schema}.${table} has no column ${missing.map((m) => `"${m}"`).join(', ')}; its columns are ${info.columns.join(', ')}.`,
          );
          ok = false;
          continue;
        }
        const needsIdentity = !info.fullIdentity && capture.operations.some((op) => op === 'UPDATE' || op === 'DELETE');
        // A publication lists only tables its owner owns; REPLICA IDENTITY is the owner's to change too.
        if (!info.owned) {
          problems.push(
            `captures.${name}.table: on source ${sourceName}, ${schema}.${table} is not owned by the role rowcast connects as, which a publication (and REPLICA IDENTITY) requires; ALTER TABLE ${qualified(schema, table)} OWNER TO that role, or grant it membership in the owner's role.`,
          );
          ok = false;
          continue;
        }
        if (needsIdentity) identity.add(qualified(schema, table));
        tables.add(qualified(schema, table));
        const hash = createHash('sha256')
          .update(JSON.stringify(['postgres', sourceName, capture, info.key]))
          .digest('hex');
        const existing = installed.get(name);
        if (existing?.settings.hash === hash) continue;
        steps.push(
          recordCaptureStep(
            `${existing ? '~' : '+'} capture ${name} on ${sourceName}:${schema}.${table} (${capture.operations.join(', ')} → ${describeTarget(capture)}, payload ${capture.payload}; logical replication)`,
            {
              name,
              schema,
              table,
              capture,
              settings: { hash, capture, key: info.key, kind: 'postgres' },
            },
          ),
        );
      }
      if (!ok) continue;
      const current = (
        await c.query<{ t: string }>(
          `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_publication_tables WHERE pubname = $1`,
          [publication],
        )
      ).rows.map((r) => r.t);
      const samePublication = hasPublication && current.length === tables.size && current.every((t) => tables.has(t));
      if (hasSlot && samePublication && !identity.size) continue;
      const list = [...tables].sort().join(', ');
      // A new slot streams from now on: a position recorded for an earlier slot of this name means nothing to it.
      if (!hasSlot)
        steps.push({
          summary: `source ${sourceName}: reading starts at the new slot ${slot}`,
          sql: 'DELETE FROM rowcast.source_progress WHERE source = $1',
          params: [sourceName],
        });
      installs.push({
        summary: `source ${sourceName}: publication ${publication} for ${list}, slot ${slot}${identity.size ? `, REPLICA IDENTITY FULL on ${[...identity].join(', ')}` : ''}`,
        run: async () => {
          const conn = await connectPostgresSource(sourceName, source);
          try {
            // As for the store's logical captures: the publication first (decoding looks it up as of each
            // transaction), the slot (which waits for running transactions), then the tables join it.
            await conn.query(`CREATE PUBLICATION ${ident(publication)}`).catch((err: { code?: string }) => {
              if (err.code !== '42710') throw err; // duplicate_object: it exists
            });
            if (!(await conn.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount) {
              await conn.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
            }
            for (const t of identity) await conn.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
            await conn.query(`ALTER PUBLICATION ${ident(publication)} SET TABLE ${list}`);
          } finally {
            await conn.end();
          }
        },
      });
    } finally {
      await c.end().catch(() => {});
    }
  }
  return steps;
}

/** A slot released a moment ago stays active briefly: dropping it is retried for up to 5 s. */
async function dropSlotRetrying(
  conn: { query(sql: string, values?: unknown[]): Promise<unknown> },
  slot: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await conn.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${literal(slot)}`,
      );
      return;
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

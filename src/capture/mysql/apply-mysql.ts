import { createHash } from 'node:crypto';
import type { CaptureConfig } from '../../config/capture-schema.js';
import type { RowcastConfig } from '../../config/schema.js';
import type { PlanStep, SourceInstall } from '../plan-step.js';
import { describeTarget, recordCaptureStep } from '../record-capture-step.js';
import type { PoolClient } from '../../store/pool.js';
import {
  binlogProblems,
  connectSource,
  currentPosition,
  lambdaDdl,
  legacyLambdaDdl,
  readMysqlTables,
} from './mysql-source.js';

/** What apply knows of the captures the store holds. */
type Installed = Map<string, { settings: { hash?: string }; function_name: string }>;

/**
 * Plans the captures of MySQL sources: checks each source's server (binlog settings, the user's privileges, the
 * captured tables), records where its binlog reading starts (the server's current position, for a source's first
 * capture), and registers its captures in rowcast.captures. `lambda_async` is installed in each captured
 * database (installs) only when the plan is applied.
 */
export async function planMysqlSources(
  client: PoolClient,
  config: RowcastConfig,
  installed: Installed,
  problems: string[],
  installs: SourceInstall[],
  /** Sources whose recorded position is replaced by the server's current one (`apply --resync`). */
  resync: ReadonlySet<string> = new Set(),
): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  const bySource = new Map<string, { name: string; capture: CaptureConfig; database: string; table: string }[]>();
  for (const [name, capture] of Object.entries(config.captures)) {
    if (capture.source === undefined) continue;
    const where = `captures.${name}`;
    if (!config.sources[capture.source]) {
      const known = Object.keys(config.sources);
      problems.push(
        `${where}.source: there is no source "${capture.source}"; declare it under "sources" (known: ${known.length ? known.join(', ') : 'none'}), or omit source to capture the store's own database.`,
      );
      continue;
    }
    if (config.sources[capture.source]!.kind !== 'mysql') continue; // planned by planPostgresSources
    if (capture.mode !== 'row')
      problems.push(
        `${where}.mode: '${capture.mode}' is for the store's PostgreSQL; a MySQL source is always read from its binlog: omit mode.`,
      );
    if (capture.when)
      problems.push(
        `${where}.when: conditions are PostgreSQL SQL over OLD/NEW and a MySQL source has none; omit when and filter with a subscription's filterPolicy.`,
      );
    if (capture.operations.includes('TRUNCATE'))
      problems.push(
        `${where}.operations: TRUNCATE is not captured from MySQL (the binlog logs it as a statement, without rows); remove it.`,
      );
    const parts =
      typeof capture.table === 'object' ? [capture.table.schema, capture.table.name] : capture.table.split('.');
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      problems.push(
        `${where}.table: write a MySQL table as "database.table" (or { schema: "database", name: "table" }), not "${typeof capture.table === 'object' ? capture.table.name : capture.table}".`,
      );
      continue;
    }
    bySource.set(capture.source, [
      ...(bySource.get(capture.source) ?? []),
      { name, capture, database: parts[0], table: parts[1] },
    ]);
  }

  for (const [sourceName, captures] of bySource) {
    const source = config.sources[sourceName]!;
    if (source.kind !== 'mysql') continue;
    let c;
    try {
      c = await connectSource(sourceName, source);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    try {
      const serverProblems = await binlogProblems(sourceName, c);
      problems.push(...serverProblems);
      // Without them the rest cannot be checked (SHOW MASTER STATUS needs REPLICATION CLIENT).
      if (serverProblems.length) continue;
      const databases = [...new Set(captures.map((x) => x.database))];
      const tables = await readMysqlTables(c, databases);
      for (const { name, capture, database, table } of captures) {
        const info = tables.get(`${database}.${table}`);
        if (!info) {
          problems.push(
            `captures.${name}.table: source ${sourceName} has no table ${database}.${table} visible to its user; create it first, fix the name, or GRANT SELECT on it.`,
          );
          continue;
        }
        const missing = (capture.columns ?? []).filter((col) => !info.columns.has(col));
        if (missing.length) {
          problems.push(
            `captures.${name}.columns: ${database}.${table} has no column ${missing.map((m) => `"${m}"`).join(', ')}; its columns are ${[...info.columns.keys()].join(', ')}.`,
          );
          continue;
        }
        const hash = createHash('sha256')
          .update(JSON.stringify(['mysql', sourceName, capture]))
          .digest('hex');
        const existing = installed.get(name);
        if (existing?.settings.hash === hash) continue;
        steps.push(
          recordCaptureStep(
            `${existing ? '~' : '+'} capture ${name} on ${sourceName}:${database}.${table} (${capture.operations.join(', ')} → ${describeTarget(capture)}, payload ${capture.payload}; binlog)`,
            {
              name,
              schema: database,
              table,
              capture,
              settings: { hash, capture },
            },
          ),
        );
      }
      // The first capture of a source starts at the server's position now; later applies keep the recorded one,
      // unless told to resync (the recorded one was purged): changes between the two are not read.
      if (resync.has(sourceName)) {
        const now = await currentPosition(c);
        steps.push({
          summary: `source ${sourceName}: binlog reading restarts at the server's current position ${JSON.stringify(now)} (changes since the recorded position are not read; backfill its captures: ${captures.map((x) => x.name).join(', ')})`,
          sql: `INSERT INTO rowcast.source_progress (source, position) VALUES ($1, $2)
            ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`,
          params: [sourceName, now],
        });
      } else if (
        !(await client.query('SELECT 1 FROM rowcast.source_progress WHERE source = $1', [sourceName])).rowCount
      ) {
        steps.push({
          summary: `source ${sourceName}: binlog reading starts at the server's current position`,
          sql: `INSERT INTO rowcast.source_progress (source, position) VALUES ($1, $2) ON CONFLICT (source) DO NOTHING`,
          params: [sourceName, await currentPosition(c)],
        });
      }
      installs.push({
        summary: `source ${sourceName}: CALL mysql.lambda_async(arn, input) and its outbox in database mysql`,
        run: async () => {
          const conn = await connectSource(sourceName, source);
          try {
            for (const sql of legacyLambdaDdl()) await conn.query(sql);
          } catch (err) {
            // The older form only where the user may write to database mysql; lambda_async() works without it.
            return `source ${sourceName}: CALL mysql.lambda_async is not installed (${(err as Error).message}); lambda_async() is`;
          } finally {
            await conn.end();
          }
        },
      });
      for (const database of databases) {
        installs.push({
          summary: `source ${sourceName}: lambda_async(arn, payload) and its outbox in database ${database}`,
          run: async () => {
            const conn = await connectSource(sourceName, source);
            try {
              for (const sql of lambdaDdl(database)) await conn.query(sql);
            } finally {
              await conn.end();
            }
          },
        });
      }
    } finally {
      await c.end().catch(() => {});
    }
  }
  return steps;
}

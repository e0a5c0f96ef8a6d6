import type { RowcastConfig } from '../../config/schema.js';
import type { PoolClient } from '../../store/pool.js';
import { ident, qualified } from '../../store/sql.js';
import { isLogical, logicalDecodingProblems, PUBLICATION } from '../../capture/logical-ddl.js';
import type { PlanStep } from '../../capture/plan-step.js';
import { tableName } from '../../capture/table-info.js';

/*
 * The publication and replication slot that the store's logical captures stream from: the plan's publication step,
 * and what `apply` asks of the server before its transaction (both must exist before tables join the publication).
 */

/**
 * The publication lists exactly the tables of the logical captures (created, changed or dropped to match), with
 * partitions' changes published as their root table's. Checks first what logical decoding needs of the server.
 */
export async function planPublication(
  client: PoolClient,
  config: RowcastConfig,
  problems: string[],
): Promise<PlanStep[]> {
  const tables = new Map<string, { schema: string; name: string }>();
  for (const [name, capture] of Object.entries(config.captures)) {
    if (!isLogical(capture) || capture.source !== undefined) continue;
    const t = tableName(capture.table, `captures.${name}.table`);
    tables.set(qualified(t.schema, t.name), t);
  }
  if (tables.size) problems.push(...(await logicalDecodingProblems(client)));
  const { rows: current } = await client.query<{ schema: string; name: string }>(
    'SELECT schemaname AS schema, tablename AS name FROM pg_publication_tables WHERE pubname = $1',
    [PUBLICATION],
  );
  const exists = await publicationExists(client);
  const list = [...tables.keys()].sort().join(', ');
  if (!tables.size)
    return exists
      ? [
          {
            summary: `- publication ${PUBLICATION} (no logical capture left)`,
            sql: `DROP PUBLICATION ${ident(PUBLICATION)}`,
          },
        ]
      : [];
  if (!exists) {
    return [
      {
        summary: `+ publication ${PUBLICATION} for ${list}`,
        sql: `CREATE PUBLICATION ${ident(PUBLICATION)} FOR TABLE ${list} WITH (publish_via_partition_root = true)`,
      },
    ];
  }
  const same = current.length === tables.size && current.every((t) => tables.has(qualified(t.schema, t.name)));
  return same
    ? []
    : [
        {
          summary: `~ publication ${PUBLICATION}: ${list}`,
          sql: `ALTER PUBLICATION ${ident(PUBLICATION)} SET TABLE ${list}`,
        },
      ];
}

export async function currentDatabase(client: PoolClient): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
}

export async function publicationExists(client: PoolClient): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [PUBLICATION])).rowCount! > 0;
}

export async function slotExists(client: PoolClient, slot: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount! > 0;
}

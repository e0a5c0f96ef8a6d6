import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { eventually } from './database.js';
import { type FaultScenario, ITEMS_TABLE, itemsConfig } from './fault-harness.js';
import type { RowcastProcess } from './rowcast-process.js';
import type { WebhookReceiver } from './webhook-receiver.js';

/**
 * The fault suite's items scenario with the items table on a second PostgreSQL (a source read by logical
 * replication): the store is a fresh test database, the receiver the items subscription's endpoint. The writers
 * and committedIds() take the source's URL and pool.
 */
export interface SourceScenario {
  source: pg.Pool;
  receiver: WebhookReceiver;
  child: RowcastProcess;
  /** Starts one more rowcast process (a restart after a kill). */
  spawn(): Promise<RowcastProcess>;
}

export async function startSourceScenario(scenario: FaultScenario, sourceUrl: string): Promise<SourceScenario> {
  const source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
  source.on('error', () => {});
  await source.query(ITEMS_TABLE);
  const db = await scenario.createDatabase();
  const receiver = await scenario.addReceiver();
  const base = itemsConfig(receiver.url);
  const config: RowcastConfigInput = {
    ...base,
    sources: { shop: { kind: 'postgres', url: { env: 'ROWCAST_FAULT_SOURCE_URL' } } },
    captures: { items: { source: 'shop', table: 'items', topic: 'items' } },
  };
  process.env.ROWCAST_FAULT_SOURCE_URL = sourceUrl;
  const env = { ROWCAST_FAULT_SOURCE_URL: sourceUrl };
  await scenario.useConfig(db.pool, config);
  const spawn = async () => {
    const child = await scenario.spawn(db.pool, db.url, env);
    await eventually(
      async () =>
        (await source.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'rowcast_shop' AND active`)).rowCount,
      'the source slot streamed',
      120_000,
    );
    return child;
  };
  return { source, receiver, child: await spawn(), spawn };
}

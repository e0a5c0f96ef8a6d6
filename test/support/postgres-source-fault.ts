import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { assertDeliveries } from './checker.js';
import { eventually } from './database.js';
import {
  explained,
  FaultScenario,
  ITEMS_TABLE,
  itemsConfig,
  reportResult,
  sleep,
  waitAllDelivered,
  Writer,
} from './fault-harness.js';
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

/** One PostgreSQL-source fault scenario (faults 21–23): what differs between them. */
export interface SourceFault<S extends { url: string; stop(): Promise<void> }> {
  /** The test's title. */
  title: string;
  /** The name its FAULT-RESULT line carries (`NN-what`). */
  result: string;
  /** Starts the source PostgreSQL. */
  server(): Promise<S>;
  /** Injects the faults while writers commit on the source; returns one figure per fault for the report. */
  inject(s: SourceScenario, server: S): Promise<number[]>;
  /** The first rowcast process must still run afterwards (not when the fault is killing it). */
  survives: boolean;
}

/**
 * Registers a fault test over a PostgreSQL source: a source server, a store, a rowcast process streaming the items
 * table and 10 writers on the source; then `inject`, and the checker: every committed row delivered, copies only
 * under the same webhook-id. Reports the figures with reportResult and takes everything down after the file.
 */
export function sourceFaultTest<S extends { url: string; stop(): Promise<void> }>(fault: SourceFault<S>): void {
  const scenario = new FaultScenario();
  let s: SourceScenario | undefined;
  let server: S | undefined;
  after(async () => {
    await scenario.cleanup();
    await s?.source.end();
    await server?.stop();
  });

  test(fault.title, { timeout: 300_000 }, () =>
    explained(scenario.children, async () => {
      server = await fault.server();
      s = await startSourceScenario(scenario, server.url);
      const writer = new Writer(server.url, 10);
      const faults = await fault.inject(s, server);
      await sleep(1000);
      await writer.stop();
      if (fault.survives) assert.ok(s.child.running, 'rowcast survived');
      const ids = await waitAllDelivered(
        s.source,
        s.receiver,
        'every committed row on the source to be delivered',
        180_000,
      );
      const result = assertDeliveries({ committed: ids, requests: s.receiver.requests });
      assert.ok(ids.length > 100, `rows committed (${ids.length})`);
      reportResult(fault.result, {
        faults,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
      });
    }),
  );
}

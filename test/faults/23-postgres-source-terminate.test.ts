import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { assertDeliveries } from '../support/checker.js';
import { explained, FaultScenario, reportResult, sleep, waitAllDelivered, Writer } from '../support/fault-harness.js';
import { type SourceScenario, startSourceScenario } from '../support/postgres-source-fault.js';

/*
 * the source's walsender terminated (pg_terminate_backend on the source) repeatedly while rows stream: everything delivered. The items table is on a second PostgreSQL read by logical replication (a source); the store is elsewhere.
 * The checker: every committed row delivered, copies only under the same webhook-id.
 */

const scenario = new FaultScenario();
let s: SourceScenario | undefined;
let server: EmbeddedDatabase | undefined;
after(async () => {
  await scenario.cleanup();
  await s?.source.end();
  await server?.stop();
});

test(
  'the source walsender terminated (pg_terminate_backend on the source) repeatedly while rows stream: everything delivered.',
  { timeout: 300_000 },
  () =>
    explained(scenario.children, async () => {
      server = await startEmbeddedPostgres();
      s = await startSourceScenario(scenario, server.url);
      const writer = new Writer(server.url, 10);
      const faults: number[] = [];
      for (let round = 0; round < 4; round++) {
        await sleep(1500);
        const { rows } = await s.source.query<{ n: number }>(
          `SELECT count(*) FILTER (WHERE pg_terminate_backend(active_pid))::int AS n FROM pg_replication_slots WHERE slot_name = 'rowcast_shop' AND active_pid IS NOT NULL`,
        );
        faults.push(rows[0]!.n);
      }
      await sleep(1000);
      await writer.stop();
      assert.ok(s.child.running, 'rowcast survived');
      const ids = await waitAllDelivered(
        s.source,
        s.receiver,
        'every committed row on the source to be delivered',
        180_000,
      );
      const result = assertDeliveries({ committed: ids, requests: s.receiver.requests });
      assert.ok(ids.length > 100, `rows committed (${ids.length})`);
      reportResult('23-postgres-source-terminate', {
        faults,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
      });
    }),
);

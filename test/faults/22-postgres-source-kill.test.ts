import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { assertDeliveries } from '../support/checker.js';
import { explained, FaultScenario, reportResult, sleep, waitAllDelivered, Writer } from '../support/fault-harness.js';
import { type SourceScenario, startSourceScenario } from '../support/postgres-source-fault.js';

/*
 * rowcast SIGKILLed three times while a PostgreSQL source streams: everything delivered. The items table is on a second PostgreSQL read by logical replication (a source); the store is elsewhere.
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
  'rowcast SIGKILLed three times while a PostgreSQL source streams: everything delivered.',
  { timeout: 300_000 },
  () =>
    explained(scenario.children, async () => {
      server = await startEmbeddedPostgres();
      s = await startSourceScenario(scenario, server.url);
      const writer = new Writer(server.url, 10);
      let child = s.child;
      const faults: number[] = [];
      for (let round = 0; round < 3; round++) {
        await sleep(1500);
        child.kill('SIGKILL');
        await child.exited;
        faults.push(round);
        child = await s.spawn();
      }
      await sleep(1000);
      await writer.stop();
      const ids = await waitAllDelivered(
        s.source,
        s.receiver,
        'every committed row on the source to be delivered',
        180_000,
      );
      const result = assertDeliveries({ committed: ids, requests: s.receiver.requests });
      assert.ok(ids.length > 100, `rows committed (${ids.length})`);
      reportResult('22-postgres-source-kill', {
        faults,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
      });
    }),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { MysqlFaultSetup, MysqlWriter } from '../support/mysql-faults.js';
import { type PrivateMariadb, privateMariadbUnavailable, startPrivateMariadb } from '../support/private-mariadb.js';

// A MariaDB of the scenario's own: restarting the machine's shared one broke whatever else was reading it.
const skip = await privateMariadbUnavailable();
const scenario = new FaultScenario();
let server: PrivateMariadb | undefined;
let setup: MysqlFaultSetup | undefined;
after(async () => {
  await scenario.cleanup();
  await setup?.drop();
  await server?.stop();
});

test(
  'MySQL source: MariaDB shut down and started again under rowcast while writers commit: rowcast reconnects and resumes, nothing lost, each row in commit order',
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      server = await startPrivateMariadb();
      setup = await new MysqlFaultSetup(scenario).setUp({ serverUrl: server.url });
      const { db } = setup;
      const child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(setup.database, false, 100, 1, server.url);
      await eventually(
        async () =>
          (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rowcast.events`)).rows[0]!.n > 0,
        'the reader to capture',
        60_000,
      );
      await sleep(1000);
      const { downMs } = await server.restart();
      const upAt = Date.now();
      const firstDelivery = await eventually(
        () => setup!.items.delivered.find((r) => r.at > upAt + 1000),
        'a delivery after the restart',
        60_000,
      );
      await sleep(1500);
      await writer.stop();
      const { items } = await setup.check('after the restart');
      assert.ok(child.running, 'rowcast survived the restart');
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      reportResult('mysql-restart', {
        downMs,
        deliveringAfterMs: firstDelivery.at - upAt,
        writes: writer.attempted,
        writesFailed: writer.failed,
        committedVersions: items.committed,
        delivered: items.delivered,
        duplicates: items.duplicates,
        requests: items.requests,
      });
    }),
);

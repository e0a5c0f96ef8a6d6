import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../support/database.js';
import { explained, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { mysqlFaultTest, MysqlWriter } from '../support/mysql-faults.js';

const { skip, scenario, setUp } = await mysqlFaultTest({ privateServer: true });

test(
  'MySQL source: MariaDB shut down and started again under rowcast while writers commit: rowcast reconnects and resumes, nothing lost, each row in commit order',
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      const { setup, server } = await setUp();
      const { db } = setup;
      const child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(setup.database, false, 100, 1, server.url);
      await eventually(async () => (await setup.capturedEvents()) > 0, 'the reader to capture', 60_000);
      await sleep(1000);
      const { downMs } = await server.restart();
      const upAt = Date.now();
      const firstDelivery = await eventually(
        () => setup.items.delivered.find((r) => r.at > upAt + 1000),
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

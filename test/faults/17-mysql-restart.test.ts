import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import {
  mariadbUnavailable,
  MysqlFaultSetup,
  MysqlWriter,
  restartMariadb,
  startMariadb,
} from '../support/mysql-faults.js';

const skip = (await mariadbUnavailable()) || (process.getuid?.() !== 0 ? 'restarting MariaDB needs root' : false);
const scenario = new FaultScenario();
let setup: MysqlFaultSetup | undefined;
after(async () => {
  // Other tests share this MariaDB: it is running again whatever happened.
  if (!skip) await startMariadb().catch(() => {});
  await scenario.cleanup();
  await setup?.drop();
});

test(
  'MySQL source: MariaDB shut down and started again under rowcast while writers commit: rowcast reconnects and resumes, nothing lost, each row in commit order',
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      setup = await new MysqlFaultSetup(scenario).setUp();
      const { db } = setup;
      const child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(setup.database, false, 100);
      await eventually(
        async () =>
          (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rowcast.events`)).rows[0]!.n > 0,
        'the reader to capture',
        60_000,
      );
      await sleep(1000);
      const { downMs } = await restartMariadb();
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

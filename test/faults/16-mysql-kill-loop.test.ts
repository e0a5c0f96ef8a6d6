import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { mariadbUnavailable, MysqlFaultSetup, MysqlWriter } from '../support/mysql-faults.js';

const skip = await mariadbUnavailable();
const KILLS = 4;
const scenario = new FaultScenario();
let setup: MysqlFaultSetup | undefined;
after(async () => {
  await scenario.cleanup();
  await setup?.drop();
});

test(`MySQL source: rowcast SIGKILLed ${KILLS} times while it reads the binlog (writers committing on MariaDB, a lambda_async trigger): nothing lost, copies only under one webhook-id, each row in commit order`, { skip, timeout: 420_000 }, () =>
  explained(scenario.children, async () => {
    setup = await new MysqlFaultSetup(scenario).setUp({ lambda: true });
    const { db } = setup;
    let child = await scenario.spawn(db.pool, db.url);
    const writer = new MysqlWriter(setup.database, true, 100);
    const kills: { afterMs: number; capturedBefore: number }[] = [];
    for (let k = 0; k < KILLS; k++) {
      const afterMs = 500 + Math.floor(Math.random() * 2000);
      await sleep(afterMs);
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rowcast.events');
      child.kill('SIGKILL');
      await child.exit(10_000);
      kills.push({ afterMs, capturedBefore: rows[0]!.n });
      // Writes go on while no reader runs: the next one resumes from the recorded position.
      await sleep(300);
      child = await scenario.spawn(db.pool, db.url);
    }
    await sleep(1000);
    await writer.stop();
    const { items, jobs } = await setup.check('after the kills');
    assert.equal(writer.failed, 0, `MariaDB writes do not fail here (${writer.lastError})`);
    assert.deepEqual(await stopChild(child), { code: 0, signal: null });
    reportResult('mysql-sigkill-loop', {
      kills: kills.length,
      writes: writer.attempted,
      committedVersions: items.committed,
      delivered: items.delivered,
      duplicates: items.duplicates,
      requests: items.requests,
      jobs: jobs?.committed,
      jobInvocations: jobs?.invocations,
      perKill: kills,
    });
  }),
);

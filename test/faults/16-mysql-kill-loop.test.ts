import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../support/database.js';
import { explained, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { mysqlFaultTest, MysqlWriter } from '../support/mysql-faults.js';

const KILLS = 4;
const { skip, scenario, setUp } = await mysqlFaultTest();

test(
  `MySQL source: rowcast SIGKILLed ${KILLS} times while it reads the binlog (writers committing on MariaDB, a lambda_async trigger): nothing lost, copies only under one webhook-id, each row in commit order`,
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      const { setup } = await setUp({ lambda: true });
      const { db } = setup;
      let child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(setup.database, true, 100);
      const kills: { afterMs: number; capturedBefore: number; capturedSinceStart: number }[] = [];
      const captured = () => setup.capturedEvents();
      let atStart = await captured();
      for (let k = 0; k < KILLS; k++) {
        // Each kill lands on a reader that is reading: the (re)started process has captured rows of its own first,
        // however slowly it starts on a loaded machine.
        await eventually(async () => (await captured()) > atStart, `rowcast to capture new rows before kill ${k + 1}`);
        const afterMs = 500 + Math.floor(Math.random() * 2000);
        await sleep(afterMs);
        const capturedBefore = await captured();
        child.kill('SIGKILL');
        await child.exit(10_000);
        kills.push({ afterMs, capturedBefore, capturedSinceStart: capturedBefore - atStart });
        // Writes go on while no reader runs: the next one resumes from the recorded position.
        await sleep(300);
        atStart = await captured();
        child = await scenario.spawn(db.pool, db.url);
      }
      await eventually(async () => (await captured()) > atStart, 'the last process to capture new rows');
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

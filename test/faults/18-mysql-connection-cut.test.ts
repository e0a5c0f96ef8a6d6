import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { eventually } from '../support/database.js';
import { explained, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { admin, mysqlFaultTest, MysqlWriter } from '../support/mysql-faults.js';

const run = promisify(execFile);
const CUTS = 3;
const { skip, scenario, setUp } = await mysqlFaultTest();

test(
  `MySQL source: the reader's binlog dump thread and other connections KILLed ${CUTS} times from SQL while writers commit: rowcast reconnects and resumes, nothing lost, each row in commit order`,
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      const { setup } = await setUp();
      const { db } = setup;
      const child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(setup.database, false, 100);
      const c = await admin();
      const cuts: { killed: number; backAfterMs: number }[] = [];
      try {
        for (let i = 0; i < CUTS; i++) {
          await sleep(1000 + Math.floor(Math.random() * 1500));
          // This scenario's rowcast's connections to MariaDB (told apart by their client ports; other tests' readers may run too).
          const before = await eventually(
            async () => {
              const mine = await connectionsOf(c, child.pid);
              return mine.some((m) => m.command.startsWith('Binlog Dump')) ? mine : null;
            },
            'the reader to stream the binlog',
            60_000,
          );
          for (const { id } of before) await c.query(`KILL CONNECTION ${Number(id)}`).catch(() => {});
          const killedAt = Date.now();
          const old = new Set(before.map((b) => b.id));
          await eventually(
            async () =>
              (await connectionsOf(c, child.pid)).some((m) => m.command.startsWith('Binlog Dump') && !old.has(m.id)),
            'the reader to stream again',
            60_000,
          );
          cuts.push({ killed: before.length, backAfterMs: Date.now() - killedAt });
        }
      } finally {
        await c.end();
      }
      await sleep(1000);
      await writer.stop();
      const { items } = await setup.check('after the cuts');
      assert.ok(child.running, 'rowcast survived the cuts');
      assert.equal(writer.failed, 0, `MariaDB writes do not fail here (${writer.lastError})`);
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      reportResult('mysql-connection-cut', {
        cuts,
        writes: writer.attempted,
        committedVersions: items.committed,
        delivered: items.delivered,
        duplicates: items.duplicates,
        requests: items.requests,
      });
    }),
);

/** The MariaDB connections (processlist id, command) whose client socket belongs to process `pid`. */
async function connectionsOf(
  c: Awaited<ReturnType<typeof admin>>,
  pid: number,
): Promise<{ id: number; command: string }[]> {
  const { stdout } = await run('ss', ['-tnpH', 'dst', '127.0.0.1:3306']);
  const ports = new Set(
    stdout
      .split('\n')
      .filter((l) => l.includes(`pid=${pid},`))
      .map((l) => /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:3306/.exec(l)?.[1])
      .filter(Boolean),
  );
  const [rows] = (await c.query(
    `SELECT ID AS id, COMMAND AS command, HOST AS host FROM information_schema.PROCESSLIST`,
  )) as [{ id: number; command: string; host: string }[], unknown];
  return rows.filter((r) => ports.has(r.host.split(':')[1])).map((r) => ({ id: Number(r.id), command: r.command }));
}

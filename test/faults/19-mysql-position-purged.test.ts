import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort } from '../../src/store/embedded-postgres.js';
import { checkDeliveries } from '../support/checker.js';
import { runCli } from '../support/cli.js';
import { eventually } from '../support/database.js';
import { explained, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { admin, mysqlFaultTest, MysqlWriter, versionOf, versionOrder } from '../support/mysql-faults.js';

// Purging binlogs would break whatever else reads the machine's MariaDB: this scenario runs a MariaDB of its own.
const { skip, scenario, setUp } = await mysqlFaultTest({ privateServer: true });

const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, unknown> } };
};

test(
  'MySQL source: while rowcast is down, rows are written and the binlog files holding its position are purged: it reports the lost position and the resync (log, /readyz) and skips nothing by itself; after `apply --resync` and a backfill every row arrives, in order per row',
  { skip, timeout: 600_000 },
  () =>
    explained(scenario.children, async () => {
      const port = await freePort();
      const httpUrl = `http://127.0.0.1:${port}`;
      const { setup, server } = await setUp({ runtime: { http: { port, host: '127.0.0.1' } } });
      const { db, database } = setup;
      const configFile = scenario.configFile!.file;
      const cli = (args: string[]) => runCli(['-c', configFile, ...args], { env: { DATABASE_URL: db.url } });
      const eventCount = () => setup.capturedEvents();
      const recordedPosition = async () =>
        (
          await db.pool.query<{ position: Record<string, unknown> }>(
            `SELECT position FROM rowcast.source_progress WHERE source = 'maria'`,
          )
        ).rows[0]!.position;

      // 1. Captured and delivered.
      let child = await scenario.spawn(db.pool, db.url);
      let writer = new MysqlWriter(database, false, 50, 1, server.url);
      await eventually(async () => (await eventCount()) > 0, 'the reader to capture', 60_000);
      await sleep(1500);
      await writer.stop();
      await setup.check('before the stop');
      const versionsBefore = new Set(await setup.committedVersions());
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      const stoppedAt = await recordedPosition();
      const eventsStopped = await eventCount();

      // 2. While rowcast is down: more rows, then the binlog rotated and the files before the new one purged.
      writer = new MysqlWriter(database, false, 50, writer.nextId, server.url);
      await sleep(2000);
      await writer.stop();
      const versionsDown = new Set(await setup.committedVersions());
      const c = await admin(server.url);
      let purgedFiles: string[];
      try {
        type Logs = [{ Log_name: string }[], unknown];
        const before = ((await c.query('SHOW BINARY LOGS')) as Logs)[0].map((l) => l.Log_name);
        await c.query('FLUSH BINARY LOGS');
        const logs = ((await c.query('SHOW BINARY LOGS')) as Logs)[0].map((l) => l.Log_name);
        // MariaDB keeps a file until its binlog checkpoint is written (InnoDB has flushed its commits): again until gone.
        const left = await eventually(
          async () => {
            await c.query('PURGE BINARY LOGS TO ?', [logs.at(-1)]);
            const now = ((await c.query('SHOW BINARY LOGS')) as Logs)[0].map((l) => l.Log_name);
            return now.length === 1 ? now : undefined;
          },
          'the binlog files before the new one to be purged',
          60_000,
        );
        purgedFiles = before.filter((f) => !left.includes(f));
        assert.ok(
          stoppedAt.file && purgedFiles.includes(String(stoppedAt.file)),
          `the recorded file is purged (recorded ${JSON.stringify(stoppedAt)}; purged ${purgedFiles.join(', ')})`,
        );
      } finally {
        await c.end();
      }

      // 3. Started again: a clear error, in the log and in /readyz; nothing read, the position kept.
      child = await scenario.spawn(db.pool, db.url);
      const gtid = String(stoppedAt.gtid);
      const notReady = await eventually(
        async () => {
          const r = await readyz(httpUrl);
          return r.status === 503 && typeof r.body.checks['source maria'] === 'string' ? r : undefined;
        },
        '/readyz to report the purged position',
        120_000,
      );
      const check = String(notReady.body.checks['source maria']);
      for (const part of ['purged', gtid, 'rowcast apply --resync maria', 'rowcast backfill items'])
        assert.ok(check.includes(part), `/readyz's check names ${part}: ${check}`);
      const logged = await eventually(
        () => child.output.split('\n').find((l) => l.includes('is no longer on the server (purged)')),
        'the error in the log',
        60_000,
      );
      for (const part of ['source maria', gtid, 'rowcast apply --resync maria', 'rowcast backfill items', 'sources.md'])
        assert.ok(logged.includes(part), `the logged error names ${part}: ${logged}`);
      // It tried again (a second error) and still skipped nothing.
      await eventually(
        () => child.output.split('\n').filter((l) => l.includes('is no longer on the server (purged)')).length >= 2,
        'the reader to try again',
        60_000,
      );
      assert.deepEqual(await recordedPosition(), stoppedAt, 'the recorded position is kept');
      assert.equal(await eventCount(), eventsStopped, 'nothing of the gap (or after it) was read');
      assert.ok(child.running, 'rowcast keeps running');

      // 4. The documented resync: reading restarts at the server's position now; a backfill sends the rows as
      // they are, while writers commit again (live changes interleave with the backfill).
      const resync = await cli(['apply', '--resync', 'maria']);
      assert.equal(resync.code, 0, `apply --resync: ${resync.stderr}`);
      assert.match(resync.stderr, /binlog reading restarts at the server's current position/);
      writer = new MysqlWriter(database, false, 50, writer.nextId, server.url);
      const backfill = await cli(['backfill', 'items', '--batch', '50']);
      assert.equal(backfill.code, 0, `backfill: ${backfill.stdout} ${backfill.stderr}`);
      await sleep(1500);
      await writer.stop();
      await eventually(async () => (await readyz(httpUrl)).status === 200, '/readyz to be ready again', 60_000);

      // 5. The checker: every version from before the stop and after the resync, and every row's last version
      // (live or as the backfill's READ); the versions written in the gap and changed again in it are lost (the
      // documented price of a resync). A READ is an event of its own: its copies share one webhook-id too.
      const all = await setup.committedVersions();
      const last = new Map<string, string>();
      for (const k of all) last.set(k.split(':')[0]!, k); // id:0 … id:v in order
      const required = new Set([...versionsBefore, ...all.filter((k) => !versionsDown.has(k)), ...last.values()]);
      const run = () => {
        const r = checkDeliveries({
          committed: [...all, ...all.map((k) => `${k}:read`)],
          requests: setup.items.requests,
          keyOf: (q) => {
            const k = versionOf(q);
            return k === undefined ? undefined : q.json.body.op === 'READ' ? `${k}:read` : k;
          },
          order: versionOrder,
        });
        const missing = new Set(r.missing);
        const sent = (k: string) => !missing.has(k) || !missing.has(`${k}:read`);
        return { ...r, sent, missingRequired: [...required].filter((k) => !sent(k)) };
      };
      await eventually(
        () => {
          const r = run();
          if (r.missingRequired.length)
            throw new Error(`${r.missingRequired.length} missing (${r.missingRequired.slice(0, 10).join(', ')})`);
          return true;
        },
        'every required version delivered',
        180_000,
      );
      await sleep(2000); // late duplicates would show now
      const r = run();
      assert.deepEqual(r.missingRequired, [], 'nothing required is missing');
      assert.deepEqual(r.unexpected, [], 'nothing delivered that never committed');
      assert.deepEqual(r.mixedIds, [], 'copies only under the same webhook-id');
      assert.deepEqual(r.orderViolations, [], "each row's versions in commit order");
      const { rows: reads } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'items' AND op = 'READ'`,
      );
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      const gap = [...versionsDown].filter((k) => !versionsBefore.has(k));
      reportResult('mysql-position-purged', {
        purgedFiles: purgedFiles.length,
        versionsBeforeStop: versionsBefore.size,
        versionsInGap: gap.length,
        gapVersionsNotSent: gap.filter((k) => !r.sent(k)).length,
        rowsBackfilled: reads[0]!.n,
        requiredVersions: required.size,
        delivered: r.delivered,
        duplicates: r.duplicates,
        writesFailed: writer.failed,
      });
    }),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { assertDeliveries } from '../support/checker.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';
import { explained, ITEMS_TABLE, itemsConfig, reportResult, sleep, stopChild, waitAllDelivered, Writer } from '../support/fault-harness.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const RUNS = 5;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test(`two or three rowcast processes, one SIGKILLed at a random point, ${RUNS} runs: the checker passes every run`, { timeout: 280_000 }, async () => {
  const runs: Record<string, unknown>[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const processes = run % 2 === 1 ? 2 : 3;
    const children: RowcastProcess[] = [];
    const db: TestDatabase = await createTestDatabase();
    const receiver = await WebhookReceiver.start();
    let configFile: ReturnType<typeof writeConfigFile> | undefined;
    const cleanup = async () => {
      for (const c of children) {
        c.kill('SIGKILL');
        await c.exited;
      }
      configFile?.remove();
      await receiver.close();
      await db.drop();
    };
    cleanups.push(cleanup);
    await explained(children, async () => {
      await db.pool.query(ITEMS_TABLE);
      receiver.reply = () => ({ status: 200, delayMs: Math.floor(Math.random() * 30) });
      const config = itemsConfig(receiver.url, { lease: '1500ms' });
      await applyConfig(db.pool, config);
      configFile = writeConfigFile(config);
      for (let i = 0; i < processes; i++) children.push(RowcastProcess.start(configFile.file, db.url));
      for (const c of children) await c.ready(db.pool, 90_000);

      const writer = new Writer(db.url, 5);
      const killAfterMs = 200 + Math.floor(Math.random() * 2500);
      await sleep(killAfterMs);
      const victim = children[Math.floor(Math.random() * children.length)]!;
      const { rows: inFlight } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'in_flight' AND lease_owner LIKE '%:' || $1::text || ':%'`,
        [String(victim.pid)],
      );
      victim.kill('SIGKILL');
      const killedAt = Date.now();
      await victim.exit(10_000);
      await sleep(1000 + Math.floor(Math.random() * 1000));
      await writer.stop();
      const ids = await waitAllDelivered(db.pool, receiver, `run ${run}: every row delivered`, 60_000, 2500);
      const result = assertDeliveries({ committed: ids, requests: receiver.requests, order: undefined });
      const survivors = children.filter((c) => c !== victim);
      for (const c of survivors) assert.deepEqual(await stopChild(c), { code: 0, signal: null }, `run ${run}: a survivor stops cleanly`);
      const lastDelivery = Math.max(...receiver.delivered.map((r) => r.at));
      runs.push({
        run,
        processes,
        killAfterMs,
        victimInFlightAtKill: inFlight[0]!.n,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
        lastDeliveryAfterKillMs: lastDelivery - killedAt,
      });
    });
    await cleanup();
    cleanups.pop();
  }
  reportResult('sigkill-loop', { runs: runs.length, totalCommitted: runs.reduce((n, r) => n + (r.committed as number), 0), totalDuplicates: runs.reduce((n, r) => n + (r.duplicates as number), 0), perRun: runs });
});

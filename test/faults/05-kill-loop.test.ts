import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import {
  explained,
  FaultScenario,
  reportResult,
  sleep,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';

const RUNS = 5;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test(
  `two or three rowcast processes, one SIGKILLed at a random point, ${RUNS} runs: the checker passes every run`,
  { timeout: 280_000 },
  async () => {
    const runs: Record<string, unknown>[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const processes = run % 2 === 1 ? 2 : 3;
      const scenario = new FaultScenario();
      const { children } = scenario;
      const cleanup = () => scenario.cleanup();
      cleanups.push(cleanup);
      await explained(children, async () => {
        const { db, receiver } = await scenario.startOnTestDatabase({
          reply: () => ({ status: 200, delayMs: Math.floor(Math.random() * 30) }),
          runtime: { lease: '1500ms' },
          processes,
        });

        const writer = new Writer(db.url, 5);
        const killAfterMs = 200 + Math.floor(Math.random() * 2500);
        await sleep(killAfterMs);
        // The victim is a process caught holding leases (in a random order), so every run kills one mid-delivery.
        const leasesOf = async (child: (typeof children)[number]) =>
          (
            await db.pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'in_flight' AND lease_owner LIKE '%:' || $1::text || ':%'`,
              [String(child.pid)],
            )
          ).rows[0]!.n;
        const { victim, inFlight } = await eventually(
          async () => {
            for (const child of [...children].sort(() => Math.random() - 0.5)) {
              const n = await leasesOf(child);
              if (n > 0) return { victim: child, inFlight: n };
            }
            return undefined;
          },
          `run ${run}: a process holding leases`,
          30_000,
        );
        victim.kill('SIGKILL');
        const killedAt = Date.now();
        await victim.exit(10_000);
        await sleep(1000 + Math.floor(Math.random() * 1000));
        await writer.stop();
        const ids = await waitAllDelivered(db.pool, receiver, `run ${run}: every row delivered`, 60_000, 2500);
        const result = assertDeliveries({ committed: ids, requests: receiver.requests, order: undefined });
        assert.ok(inFlight > 0, `run ${run}: the victim held leases when it was killed (${inFlight})`);
        const survivors = children.filter((c) => c !== victim);
        for (const c of survivors)
          assert.deepEqual(await stopChild(c), { code: 0, signal: null }, `run ${run}: a survivor stops cleanly`);
        const lastDelivery = Math.max(...receiver.delivered.map((r) => r.at));
        runs.push({
          run,
          processes,
          killAfterMs,
          victimInFlightAtKill: inFlight,
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
    reportResult('sigkill-loop', {
      runs: runs.length,
      totalCommitted: runs.reduce((n, r) => n + (r.committed as number), 0),
      totalDuplicates: runs.reduce((n, r) => n + (r.duplicates as number), 0),
      perRun: runs,
    });
  },
);

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

/**
 * Fault 05 for a subscription that reads through a cursor (migration 030): the victim is a process holding ranges
 * of the cursor, so its ranges expire mid-delivery and are taken over whole by a survivor, and some of its
 * deliveries fail first (rows of their own). Every committed row is delivered, under its message's id.
 */
const RUNS = 3;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test(
  `a cursor subscription, two or three processes, one SIGKILLed while it holds ranges, ${RUNS} runs: the checker passes every run`,
  { timeout: 240_000 },
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
          // One attempt in 20 fails: the retry comes from a delivery row, beside the cursor.
          reply: () =>
            Math.random() < 0.05 ? { status: 503 } : { status: 200, delayMs: Math.floor(Math.random() * 30) },
          runtime: { lease: '1500ms' },
          processes,
          subscription: { cursor: true },
        });

        const writer = new Writer(db.url, 5);
        await sleep(200 + Math.floor(Math.random() * 2500));
        const rangesOf = async (child: (typeof children)[number]) =>
          (
            await db.pool.query<{ n: number }>(
              `SELECT coalesce(sum(to_seq - from_seq), 0)::int AS n FROM rowcast.cursor_leases WHERE lease_owner LIKE '%:' || $1::text || ':%'`,
              [String(child.pid)],
            )
          ).rows[0]!.n;
        const { victim, leased } = await eventually(
          async () => {
            for (const child of [...children].sort(() => Math.random() - 0.5)) {
              const n = await rangesOf(child);
              if (n > 0) return { victim: child, leased: n };
            }
            return undefined;
          },
          `run ${run}: a process holding ranges of the cursor`,
          30_000,
        );
        victim.kill('SIGKILL');
        const killedAt = Date.now();
        await victim.exit(10_000);
        await sleep(1000 + Math.floor(Math.random() * 1000));
        await writer.stop();
        const ids = await waitAllDelivered(db.pool, receiver, `run ${run}: every row delivered`, 60_000, 2500);
        const result = assertDeliveries({ committed: ids, requests: receiver.requests, order: undefined });
        // The victim's ranges that it had delivered but not completed expire, and a survivor takes them over.
        const cursor = await eventually(
          async () => {
            const { rows } = await db.pool.query<{ leases: number; rows: number; passed: boolean }>(
              `SELECT (SELECT count(*)::int FROM rowcast.cursor_leases) AS leases,
                      (SELECT count(*)::int FROM rowcast.deliveries) AS rows,
                      rowcast.cursor_position('items') >= (SELECT max(seq) FROM rowcast.messages) AS passed`,
            );
            return rows[0]!.leases === 0 && rows[0]!.passed && rows[0]!;
          },
          `run ${run}: the cursor passed every message and holds no range`,
          60_000,
        );
        const survivors = children.filter((c) => c !== victim);
        for (const c of survivors)
          assert.deepEqual(await stopChild(c), { code: 0, signal: null }, `run ${run}: a survivor stops cleanly`);
        runs.push({
          run,
          processes,
          seqsLeasedByVictim: leased,
          committed: result.committed,
          delivered: result.delivered,
          duplicates: result.duplicates,
          requests: result.requests,
          deliveryRows: cursor.rows,
          lastDeliveryAfterKillMs: Math.max(...receiver.delivered.map((r) => r.at)) - killedAt,
        });
      });
      await cleanup();
      cleanups.pop();
    }
    reportResult('cursor-sigkill-loop', {
      runs: runs.length,
      totalCommitted: runs.reduce((n, r) => n + (r.committed as number), 0),
      totalDuplicates: runs.reduce((n, r) => n + (r.duplicates as number), 0),
      perRun: runs,
    });
  },
);

import { after, test } from 'node:test';
import { eventually } from '../support/database.js';
import { reportResult } from '../support/fault-harness.js';
import { sigkillFigures, sigkillLoop } from '../support/sigkill-loop.js';

/**
 * Fault 05 for a subscription that reads through a cursor (migration 030): the victim is a process holding ranges
 * of the cursor, so its ranges expire mid-delivery and are taken over whole by a survivor, and some of its
 * deliveries fail first (rows of their own). Every committed row is delivered, under its message's id, and the
 * cursor ends past every message with no range left leased.
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
    const runs = await sigkillLoop({
      runs: RUNS,
      // One attempt in 20 fails: the retry comes from a delivery row, beside the cursor.
      reply: () => (Math.random() < 0.05 ? { status: 503 } : { status: 200, delayMs: Math.floor(Math.random() * 30) }),
      subscription: { cursor: true },
      // Messages in the ranges the process has leased.
      heldBy: async (pool, pid) =>
        (
          await pool.query<{ n: number }>(
            `SELECT coalesce(sum(to_seq - from_seq), 0)::int AS n FROM rowcast.cursor_leases WHERE lease_owner LIKE '%:' || $1::text || ':%'`,
            [String(pid)],
          )
        ).rows[0]!.n,
      // The victim's ranges that it had sent but not completed expire, and a survivor takes them over.
      afterDelivered: (pool, run) =>
        eventually(
          async () => {
            const { rows } = await pool.query<{ leases: number; deliveryRows: number; passed: boolean }>(
              `SELECT (SELECT count(*)::int FROM rowcast.cursor_leases) AS leases,
                      (SELECT count(*)::int FROM rowcast.deliveries) AS "deliveryRows",
                      rowcast.cursor_position('items') >= (SELECT max(seq) FROM rowcast.messages) AS passed`,
            );
            const { leases, passed, deliveryRows } = rows[0]!;
            return leases === 0 && passed && { deliveryRows };
          },
          `run ${run}: the cursor passed every message and holds no range`,
          60_000,
        ),
      cleanups,
    });
    reportResult('cursor-sigkill-loop', sigkillFigures(runs));
  },
);

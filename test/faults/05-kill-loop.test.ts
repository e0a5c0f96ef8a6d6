import { after, test } from 'node:test';
import { reportResult } from '../support/fault-harness.js';
import { sigkillFigures, sigkillLoop } from '../support/sigkill-loop.js';

const RUNS = 5;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test(
  `two or three rowcast processes, one SIGKILLed at a random point, ${RUNS} runs: the checker passes every run`,
  { timeout: 280_000 },
  async () => {
    const runs = await sigkillLoop({
      runs: RUNS,
      reply: () => ({ status: 200, delayMs: Math.floor(Math.random() * 30) }),
      // Rows: what a killed process held is counted in delivery rows (fault 25 runs the loop through a cursor).
      subscription: { cursor: false },
      // Deliveries in flight under the process's leases.
      heldBy: async (pool, pid) =>
        (
          await pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'in_flight' AND lease_owner LIKE '%:' || $1::text || ':%'`,
            [String(pid)],
          )
        ).rows[0]!.n,
      cleanups,
    });
    reportResult('sigkill-loop', sigkillFigures(runs));
  },
);

import { after, test } from 'node:test';
import { explained, FaultScenario } from '../support/fault-harness.js';
import { fifoOrderScenario } from '../support/fifo-order.js';

const scenario = new FaultScenario();
after(() => scenario.cleanup());

test(
  'FIFO order per key under faults: two processes, one SIGKILLed, connections terminated, 503s: every version delivered, in commit order per key',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, () =>
      fifoOrderScenario(scenario, {
        name: 'fifo-order',
        // Rows: fault 26 runs the same scenario through a cursor.
        subscription: { cursor: false },
        // Delivery rows the process holds in flight.
        heldBy: async (pool, pid) =>
          (
            await pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'in_flight' AND lease_owner LIKE '%:' || $1::text || ':%'`,
              [String(pid)],
            )
          ).rows[0]!.n,
      }),
    ),
);

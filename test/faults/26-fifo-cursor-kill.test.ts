import { after, test } from 'node:test';
import { explained, FaultScenario } from '../support/fault-harness.js';
import { fifoOrderScenario } from '../support/fifo-order.js';

/**
 * Fault 11 for a subscription that reads its FIFO topic through a cursor (migration 032): the victim holds the
 * cursor's one open range (or failed messages' rows), so the range expires mid-delivery and a survivor takes it
 * over whole; no row's versions may arrive out of commit order meanwhile.
 */
const scenario = new FaultScenario();
after(() => scenario.cleanup());

test(
  'FIFO order per key through a cursor under faults: two processes, one SIGKILLed while it holds the range, connections terminated, 503s: every version delivered, in commit order per key',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, () =>
      fifoOrderScenario(scenario, {
        name: 'fifo-cursor-order',
        subscription: { cursor: true },
        // Messages in the cursor's ranges the process holds, and delivery rows it holds in flight.
        heldBy: async (pool, pid) =>
          (
            await pool.query<{ n: number }>(
              `SELECT (SELECT coalesce(sum(to_seq - from_seq), 0)::int FROM rowcast.cursor_leases WHERE lease_owner LIKE '%:' || $1::text || ':%')
                    + (SELECT count(*)::int FROM rowcast.deliveries WHERE state = 'in_flight' AND lease_owner LIKE '%:' || $1::text || ':%') AS n`,
              [String(pid)],
            )
          ).rows[0]!.n,
      }),
    ),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { assertDeliveries } from '../support/checker.js';
import {
  explained,
  FaultScenario,
  reportResult,
  sleep,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';

const scenario = new FaultScenario();

after(() => scenario.cleanup());

test(
  'pg_terminate_backend on the listener and worker connections while delivering: everything delivered',
  { timeout: 180_000 },
  () =>
    explained(scenario.children, async () => {
      const { db, receiver, child } = await scenario.startOnTestDatabase({
        // A little latency at the subscriber so that connections are busy mid-delivery when killed.
        reply: () => ({ status: 200, delayMs: Math.floor(Math.random() * 20) }),
      });

      const writer = new Writer(db.url, 8);
      let terminated = 0;
      const perRound: number[] = [];
      for (let round = 0; round < 8; round++) {
        await sleep(500 + Math.floor(Math.random() * 300));
        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name IN ('rowcast', 'rowcast listener') AND pid <> pg_backend_pid()`,
        );
        perRound.push(rows[0]!.n);
        terminated += rows[0]!.n;
      }
      await writer.stop();
      assert.ok(child.running, 'rowcast survived');
      const t0 = Date.now();
      const ids = await waitAllDelivered(db.pool, receiver, 'every committed row to be delivered', 60_000);
      const catchUpMs = Date.now() - t0;
      const result = assertDeliveries({ committed: ids, requests: receiver.requests });
      assert.ok(terminated > 8, `connections were terminated (${terminated})`);
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      reportResult('terminate-backends', {
        terminatedConnections: terminated,
        terminatedPerRound: perRound,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
        catchUpAfterWritersStoppedMs: catchUpMs,
      });
    }),
);

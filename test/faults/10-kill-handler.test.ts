import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';

const scenario = new FaultScenario();
after(() => scenario.cleanup());

const HANDLER = fileURLToPath(new URL('./handlers/sleepy-publisher.ts', import.meta.url));
const JOBS = 3;
const TIMEOUT_MS = 5000;
/** An invocation's lease is the function's timeout plus 30 s (src/functions/function-worker.ts). */
const LEASE_MS = TIMEOUT_MS + 30_000;

test(
  'SIGKILL while handlers run, then a restart: each invocation runs again after its lease and publishes exactly once',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, async () => {
      const db = await scenario.createDatabase();
      const results = await scenario.addReceiver();
      const pings = await scenario.addReceiver();
      await db.pool.query('CREATE TABLE jobs (id int PRIMARY KEY, ms int NOT NULL)');
      const config: RowcastConfigInput = {
        topics: { results: {} },
        captures: { jobs: { table: 'jobs', function: 'sleepy' } },
        functions: {
          sleepy: {
            handler: HANDLER,
            timeout: `${TIMEOUT_MS}ms`,
            minDelay: '50ms',
            maxDelay: '100ms',
            environment: { ENV_TOPIC_ARN: 'results', PING_URL: pings.url },
          },
        },
        subscriptions: {
          results: {
            topic: 'results',
            protocol: 'http',
            endpoint: results.url,
            deliveryPolicy: { minDelay: '50ms', maxDelay: '300ms', timeout: '5s' },
          },
        },
        runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s' },
      };
      await scenario.useConfig(db.pool, config);
      const victim = await scenario.spawn(db.pool, db.url);

      // Every handler is mid-run (it said so, and sleeps 3 s on its first attempt) when the process is killed.
      await db.pool.query('INSERT INTO jobs SELECT g, 3000 FROM generate_series(1, $1::int) g', [JOBS]);
      await eventually(() => pings.requests.length === JOBS, 'every handler to be running', 60_000);
      victim.kill('SIGKILL');
      const killedAt = Date.now();
      await victim.exit(10_000);
      await sleep(500);
      assert.equal(results.requests.length, 0, 'a killed attempt publishes nothing');
      const { rows: leased } = await db.pool.query<{ id: number; expires: Date }>(
        `SELECT (payload::json -> 'after' ->> 'id')::int AS id, available_at AS expires FROM rowcast.invocations WHERE state = 'in_flight'`,
      );
      assert.equal(leased.length, JOBS, 'the killed attempts keep their leases');
      const expiry = new Map(leased.map((l) => [l.id, l.expires.getTime()]));

      const restarted = await scenario.spawn(db.pool, db.url);
      const ids = Array.from({ length: JOBS }, (_, i) => i + 1);
      const delivered = await eventually(
        () => assertDeliveries({ committed: ids, requests: results.requests }),
        'every invocation to run again and publish',
        LEASE_MS + 60_000,
      );
      const recoveredMs = Math.max(...results.delivered.map((r) => r.at)) - killedAt;
      // Not before its lease ran out (it began at the claim, before the handler started, so LEASE_MS from the kill
      // would be too strict); 200 ms for clocks read by PostgreSQL and by this process.
      for (const r of results.delivered) {
        const early = expiry.get(r.json.body.after.id)! - r.at;
        assert.ok(early <= 200, `job ${r.json.body.after.id} re-ran ${early} ms before its lease ran out`);
      }
      await sleep(1500); // late duplicates would show now
      const result = assertDeliveries({ committed: ids, requests: results.requests });
      assert.equal(result.duplicates, 0, 'each invocation published exactly once');
      const { rows } = await db.pool.query<{ state: string; attempts: number; n: number }>(
        `SELECT state, attempts, count(*)::int AS n FROM rowcast.invocations GROUP BY 1, 2`,
      );
      assert.deepEqual(
        rows,
        [{ state: 'done', attempts: 2, n: JOBS }],
        'each done on its second attempt (the killed one counted)',
      );
      assert.ok(delivered.ok);
      assert.deepEqual(await stopChild(restarted), { code: 0, signal: null });

      reportResult('sigkill-handler', {
        handlersRunningAtKill: JOBS,
        invocationLeaseMs: LEASE_MS,
        publishedAfterKillMs: recoveredMs,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
      });
    }),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { freePort } from '../../src/store/embedded-postgres.js';
import { migrate } from '../../src/store/migrate.js';
import { createPool, type Pool } from '../../src/store/pool.js';
import { assertDeliveries } from '../support/checker.js';
import { openSse } from '../support/sse-client.js';
import { eventually } from '../support/database.js';
import { databaseUrlFor } from '../support/database-url.js';
import {
  explained,
  FaultScenario,
  reportResult,
  type RestartablePostgres,
  sleep,
  startRestartablePostgres,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';

let server: RestartablePostgres | undefined;
let pool: Pool | undefined;
const scenario = new FaultScenario();

after(async () => {
  await scenario.cleanup();
  await pool?.end().catch(() => {});
  await server?.stop();
});

test(
  'PostgreSQL restarted with -m immediate while writers insert: rowcast reconnects (LISTEN too) and catches up, and a live topic stream misses nothing',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, async () => {
      server = await startRestartablePostgres();
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query('CREATE DATABASE rowcast_fault');
      await admin.end();
      const url = databaseUrlFor(server.url, 'rowcast_fault');
      pool = createPool(url, { max: 3, applicationName: 'rowcast test' });
      await migrate(pool);
      const port = await freePort();
      const { receiver, child } = await scenario.start(pool, url, { runtime: { http: { port } } });
      // A live stream open across the restarts: what the crash lost may come again (same message id), never go missing.
      // The HTTP server starts listening just after the workers.
      await eventually(
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok,
        '/readyz to answer',
        30_000,
      );
      const stream = await openSse(`http://127.0.0.1:${port}/topics/items/stream`);
      const streamed = () => stream.events.map((e) => JSON.parse(e.data).body.after.id as number);
      const missedOnStream = (ids: number[]) => {
        const seen = new Set(streamed());
        return ids.filter((id) => !seen.has(id));
      };

      const writer = new Writer(url, 10);
      const restarts: { downMs: number; listenerBackMs: number; firstDeliveryAfterMs: number }[] = [];
      await sleep(1500);
      for (let i = 0; i < 2; i++) {
        const { downMs } = await server.restartImmediate();
        const upAt = Date.now();
        const listenerBack = eventually(
          async () =>
            (
              await pool!.query(
                `SELECT 1 FROM pg_stat_activity WHERE application_name = 'rowcast listener' AND datname = current_database()`,
              )
            ).rowCount,
          'the LISTEN connection to come back',
          30_000,
        ).then(() => Date.now() - upAt);
        const firstDelivery = eventually(
          () => receiver.delivered.find((r) => r.at > upAt),
          'a delivery after the restart',
          30_000,
        ).then((r) => r.at - upAt);
        const [listenerBackMs, firstDeliveryAfterMs] = await Promise.all([listenerBack, firstDelivery]);
        restarts.push({ downMs, listenerBackMs, firstDeliveryAfterMs });
        await sleep(1500);
      }
      await writer.stop();
      assert.ok(child.running, 'rowcast survived the restarts');
      const t0 = Date.now();
      const ids = await waitAllDelivered(
        pool,
        receiver,
        'every committed row to be delivered after the restarts',
        60_000,
      );
      const result = assertDeliveries({ committed: ids, requests: receiver.requests });
      await eventually(
        () => missedOnStream(ids).length === 0,
        'every committed row on the live stream too',
        30_000,
      ).catch(() => {
        throw new Error(`the live stream missed ${missedOnStream(ids).length} of ${ids.length} rows`);
      });
      const streamIds = streamed();
      await stream.close();
      const catchUpMs = Date.now() - t0;
      const exit = await stopChild(child);
      assert.deepEqual(exit, { code: 0, signal: null }, 'rowcast stops on SIGTERM after the restarts (no hang)');
      reportResult('postgres-restart-immediate', {
        restarts: restarts.length,
        writesAttempted: writer.attempted,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
        streamMessages: streamIds.length,
        streamRepeats: streamIds.length - new Set(streamIds).size,
        restartTimings: restarts,
        catchUpAfterWritersStoppedMs: catchUpMs,
      });
    }),
);

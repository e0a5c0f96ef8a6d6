import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { assertDeliveries } from '../support/checker.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';
import { explained, ITEMS_TABLE, itemsConfig, reportResult, sleep, stopChild, waitAllDelivered, Writer } from '../support/fault-harness.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase | undefined;
let receiver: WebhookReceiver | undefined;
let configFile: ReturnType<typeof writeConfigFile> | undefined;
const children: RowcastProcess[] = [];

after(async () => {
  for (const c of children) {
    c.kill('SIGKILL');
    await c.exited;
  }
  configFile?.remove();
  await receiver?.close();
  await db?.drop();
});

test('pg_terminate_backend on the listener and worker connections while delivering: everything delivered', { timeout: 180_000 }, () =>
  explained(children, async () => {
    db = await createTestDatabase();
    await db.pool.query(ITEMS_TABLE);
    receiver = await WebhookReceiver.start();
    // A little latency at the subscriber so that connections are busy mid-delivery when killed.
    receiver.reply = () => ({ status: 200, delayMs: Math.floor(Math.random() * 20) });
    const config = itemsConfig(receiver.url);
    await applyConfig(db.pool, config);
    configFile = writeConfigFile(config);
    const child = RowcastProcess.start(configFile.file, db.url);
    children.push(child);
    await child.ready(db.pool, 90_000);

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

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DeliveryWorker } from '../../src/delivery/delivery-worker.js';
import type { RowcastRuntime } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { type ClaimedDelivery, claimDeliveries } from '../../src/delivery/delivery-store.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime | undefined;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await applyConfig(db.pool, {
    topics: { t: {} },
    subscriptions: { late: { topic: 't', protocol: 'http', endpoint: receiver.url } },
  });
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

/** The worker's attempt of one claimed delivery (what its claim loop does once a slot is free). */
type Attempting = {
  process(item: ClaimedDelivery & { key: string; group: string; leaseMs: number }, signal: AbortSignal): Promise<void>;
};

test('a delivery of a subscription this process has not loaded is handed back for a retry, not made dead', async () => {
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO rowcast.messages (topic, body) VALUES ('t', '{"n": 1}') RETURNING id`,
  );
  const messageId = rows[0]!.id;
  await db.pool.query(`INSERT INTO rowcast.deliveries (message_id, subscription) VALUES ($1, 'late')`, [messageId]);

  // A worker that has not loaded its subscriptions yet (as one that started before the subscription was applied).
  const worker = new DeliveryWorker(
    db.pool,
    { owner: 'test-owner', concurrency: 4, lease: 60_000, pollInterval: 200, allowPrivateEndpoints: true },
    createLogger('silent'),
  );
  const [claimed] = await claimDeliveries(db.pool, new Map([['late', 1]]), 60_000, 'test-owner');
  assert.ok(claimed);
  await (worker as unknown as Attempting).process(
    { ...claimed, key: claimed.deliveryId, group: 'late', leaseMs: 60_000 },
    new AbortController().signal,
  );
  await worker.stop(0);

  const row = (
    await db.pool.query(`SELECT state, attempts, last_error FROM rowcast.deliveries WHERE message_id = $1`, [messageId])
  ).rows[0];
  assert.equal(row.state, 'pending', `a retry, not dead (last_error: ${row.last_error})`);
  assert.equal(row.attempts, 0, 'nothing was sent: the attempt does not count');

  // A process that has the subscription delivers it.
  rowcast = await startTestRowcast(db.url);
  const got = await eventually(
    () => receiver.delivered.find((r) => r.headers['webhook-id'] === messageId),
    'the delivery',
  );
  assert.deepEqual(got.json.body, { n: 1 });
  await eventually(
    async () =>
      (await db.pool.query(`SELECT state FROM rowcast.deliveries WHERE message_id = $1`, [messageId])).rows[0].state ===
      'done',
    'done',
  );
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DeliveryWorker } from '../../src/delivery/delivery-worker.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, type TestDatabase } from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/*
 * A claim that answers later than the lease's budget for waiting (2 s; after a PostgreSQL restart under a deep
 * backlog, on a loaded machine) must not stop deliveries. Before, every item of such a claim was already too late
 * to start when it came back, was handed back unstarted, was claimed again as slowly: in every process, forever
 * (the 10-minute soak's stall). Now slow claims lengthen the next leases, so what they bring back runs.
 */

let db: TestDatabase;
let receiver: WebhookReceiver;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await applyConfig(db.pool, {
    topics: { t: {} },
    subscriptions: { hook: { topic: 't', protocol: 'http', endpoint: receiver.url } },
  });
});

after(async () => {
  await receiver?.close();
  await db?.drop();
});

const CLAIM_DELAY_MS = 3000;

/** Its claims answer CLAIM_DELAY_MS late, as a claim under a deep backlog does (the claim itself is the real one). */
class SlowClaims extends DeliveryWorker {
  claims = 0;
  protected override async claim(wanted: Map<string, number>) {
    const claimed = await super.claim(wanted);
    this.claims++;
    await new Promise((r) => setTimeout(r, CLAIM_DELAY_MS));
    return claimed;
  }
}

test(
  'claims slower than the lease’s waiting budget still deliver what they claimed',
  { timeout: patient(90_000) },
  async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `INSERT INTO rowcast.messages (topic, body) VALUES ('t', '{"n": 1}') RETURNING id`,
    );
    await db.pool.query(`INSERT INTO rowcast.deliveries (message_id, subscription) VALUES ($1, 'hook')`, [rows[0]!.id]);
    const worker = new SlowClaims(
      db.pool,
      { owner: 'slow', concurrency: 4, lease: 3000, pollInterval: 200, allowPrivateEndpoints: true },
      createLogger('silent'),
    );
    await worker.start();
    try {
      // Before the fix this waited forever (every claim handed back unstarted): the test's timeout says so.
      await eventually(() => receiver.delivered.length > 0, 'the delivery', 60_000);
      await eventually(
        async () =>
          (await db.pool.query(`SELECT state FROM rowcast.deliveries WHERE message_id = $1`, [rows[0]!.id])).rows[0]
            .state === 'done',
        'done',
      );
      assert.equal(receiver.delivered.length, 1);
    } finally {
      await worker.stop(1000);
    }
  },
);

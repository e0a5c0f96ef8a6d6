import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

const SUBSCRIPTIONS = 40;
let db: TestDatabase;
let receiver: WebhookReceiver;

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    tables: `CREATE TABLE t (id int PRIMARY KEY)`,
    config: ({ receiver }) => ({
      topics: { t: {} },
      captures: { t: { table: 't', topic: 't' } },
      subscriptions: Object.fromEntries(
        Array.from({ length: SUBSCRIPTIONS }, (_x, i) => [
          `s${String(i).padStart(2, '0')}`,
          { topic: 't', protocol: 'http' as const, endpoint: `${receiver.url}?s=${i}` },
        ]),
      ),
    }),
    // Fewer slots than subscriptions, default maxConcurrency (32) each: every subscription must still get its turn.
    runtime: { concurrency: 16 },
  }));
});

after(() => close?.());

test('more subscriptions than delivery slots: every subscription is served', { timeout: patient(60_000) }, async () => {
  await db.pool.query(`INSERT INTO t SELECT generate_series(1, 5)`);
  await eventually(() => receiver.delivered.length >= SUBSCRIPTIONS * 5, `${SUBSCRIPTIONS * 5} deliveries`, 30_000);
  const perSubscription = new Map<string, number>();
  for (const r of receiver.delivered) perSubscription.set(r.path, (perSubscription.get(r.path) ?? 0) + 1);
  assert.equal(perSubscription.size, SUBSCRIPTIONS);
  assert.ok([...perSubscription.values()].every((n) => n === 5));
});

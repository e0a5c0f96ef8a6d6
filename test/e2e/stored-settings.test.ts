import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type RowcastRuntime, startRowcast } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime | undefined;
const logged: Record<string, any>[] = [];

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await applyConfig(db.pool, {
    topics: { t: {} },
    subscriptions: {
      good: { topic: 't', protocol: 'http', endpoint: `${receiver.url}/good` },
      broken: {
        topic: 't',
        protocol: 'http',
        endpoint: `${receiver.url}/broken`,
        headers: { authorization: 'Bearer s3cr3t-token' },
      },
    },
  });
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

test('a subscription whose stored settings do not validate is reported by name and key, and not delivered; the others are', async () => {
  // Corrupted behind rowcast's back (a hand edit, a bad migration): maxAttempts is no longer a number.
  await db.pool.query(
    `UPDATE rowcast.subscriptions SET settings = jsonb_set(settings, '{deliveryPolicy,maxAttempts}', '"lots"') WHERE name = 'broken'`,
  );
  rowcast = await startRowcast({
    databaseUrl: db.url,
    runtime: FAST_RUNTIME,
    logger: createLogger('warn', { write: (line: string) => void logged.push(JSON.parse(line)) }),
  });

  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO rowcast.messages (topic, body) VALUES ('t', '{"n": 1}') RETURNING id`,
  );
  const messageId = rows[0]!.id;
  await db.pool.query(`INSERT INTO rowcast.deliveries (message_id, subscription) VALUES ($1, 'good'), ($1, 'broken')`, [
    messageId,
  ]);

  await eventually(
    () => receiver.delivered.find((r) => r.path === '/hook/good'),
    'the delivery of the valid subscription',
  );
  const report = await eventually(
    () => logged.find((l) => l.subscription === 'broken' && l.level >= 50),
    'the error naming the broken subscription',
  );
  assert.match(
    report.msg,
    /subscription broken has invalid settings in the database \(settings\.deliveryPolicy\.maxAttempts: .+\)/,
  );
  assert.match(report.msg, /rowcast apply/, 'says how to fix it');
  assert.doesNotMatch(JSON.stringify(logged), /s3cr3t-token/, 'no header value in the logs');

  // Not sent, and not counted: it waits until the settings are fixed.
  assert.equal(receiver.delivered.filter((r) => r.path === '/hook/broken').length, 0);
  const broken = (
    await db.pool.query(
      `SELECT state, attempts FROM rowcast.deliveries WHERE message_id = $1 AND subscription = 'broken'`,
      [messageId],
    )
  ).rows[0];
  assert.deepEqual(broken, { state: 'pending', attempts: 0 });
  assert.equal(
    logged.filter((l) => l.subscription === 'broken' && l.level >= 50).length,
    1,
    'reported once, not on every reload',
  );

  // Fixed by applying the config again: delivered.
  await db.pool.query(
    `UPDATE rowcast.subscriptions SET settings = jsonb_set(settings, '{deliveryPolicy,maxAttempts}', '10') WHERE name = 'broken'`,
  );
  await db.pool.query(`SELECT pg_notify('rowcast_config', '')`);
  await eventually(() => receiver.delivered.find((r) => r.path === '/hook/broken'), 'the delivery once fixed');
});

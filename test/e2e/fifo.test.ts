import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime, invokeFunction } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  settled,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let fixed = false;
const KEYS = 12;
const UPDATES = 8;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  // Roughly one request in three fails at first; every request for the row 'poison' fails for good.
  receiver.reply = (req) => {
    if (req.path.endsWith('?blocking'))
      return req.json.body.after.v === 0 && !fixed ? { status: 500 } : { status: 200 };
    if (req.json?.body?.after?.name === 'poison') return { status: 500 };
    return Math.random() < 0.33 ? { status: 503 } : { status: 200, delayMs: Math.floor(Math.random() * 5) };
  };
  await db.pool.query(
    `CREATE TABLE counters (id int PRIMARY KEY, name text, v int NOT NULL); CREATE TABLE jobs (id int PRIMARY KEY, v int NOT NULL)`,
  );
  const config: RowcastConfigInput = {
    topics: {
      counters: { fifo: true },
      fifo: { fifo: true, dedupWindow: '1m' },
      jobs: { fifo: true, onDeadMessage: 'block-group' },
    },
    captures: {
      counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] },
      jobs: { table: 'jobs', topic: 'jobs', operations: ['INSERT', 'UPDATE'] },
    },
    functions: { dedup: { handler: 'test/fixtures/handlers/dedup-publisher.ts' } },
    subscriptions: {
      ordered: {
        topic: 'counters',
        protocol: 'http',
        endpoint: receiver.url,
        maxConcurrency: 16,
        deliveryPolicy: { maxAttempts: 30, minDelay: '5ms', maxDelay: '20ms' },
      },
      poisoned: {
        topic: 'counters',
        protocol: 'http',
        endpoint: `${receiver.url}?poisoned`,
        deliveryPolicy: { maxAttempts: 2, minDelay: '5ms', maxDelay: '10ms' },
      },
      // Fast retries: a third of requests fail at random, and default backoff (1 s doubling) outlasts the wait.
      fifo: {
        topic: 'fifo',
        protocol: 'http',
        endpoint: `${receiver.url}?fifo`,
        deliveryPolicy: { maxAttempts: 30, minDelay: '5ms', maxDelay: '20ms' },
      },
      blocking: {
        topic: 'jobs',
        protocol: 'http',
        endpoint: `${receiver.url}?blocking`,
        deliveryPolicy: { maxAttempts: 1 },
      },
    },
  };
  await applyConfig(db.pool, config);
  rowcast = await startTestRowcast(db.url, {}, parseConfig(config, 'test').functions);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

test(
  'FIFO: interleaved updates with injected failures arrive in commit order per row; a dead message holds back only its own row',
  { timeout: patient(120_000) },
  async () => {
    await db.pool.query(
      `INSERT INTO counters SELECT g, CASE WHEN g = 1 THEN 'poison' ELSE 'row ' || g END, 0 FROM generate_series(1, ${KEYS}) g`,
    );
    // Writers from several connections interleave their commits across rows.
    await Promise.all(
      Array.from({ length: 4 }, async (_w, w) => {
        for (let u = 0; u < UPDATES; u++) {
          for (let id = 1 + w; id <= KEYS; id += 4)
            await db.pool.query(`UPDATE counters SET v = v + 1 WHERE id = $1`, [id]);
        }
      }),
    );
    const healthy = (id: number) =>
      receiver.requests.filter((r) => r.path === '/hook' && r.status === 200 && Number(r.json.body.key.id) === id);
    await eventually(
      () => Array.from({ length: KEYS - 1 }, (_x, i) => i + 2).every((id) => healthy(id).length >= UPDATES + 1),
      'every healthy row delivered',
      90_000,
    );
    for (let id = 2; id <= KEYS; id++) {
      const values = healthy(id).map((r) => r.json.body.after.v as number);
      assert.deepEqual(
        values,
        Array.from({ length: UPDATES + 1 }, (_x, i) => i),
        `row ${id} arrived in commit order, each once`,
      );
    }
    // The poison row's messages each died after their attempts, in order, without holding back the others.
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'ordered' AND state = 'dead'`,
          )
        ).rows[0].n ===
        UPDATES + 1,
      'every poison message dead',
      60_000,
    );
    const poisonAttempts = receiver.requests
      .filter((r) => r.path === '/hook' && r.json.body.after.name === 'poison')
      .map((r) => r.json.body.after.v as number);
    const firstSeen = [...new Set(poisonAttempts)];
    assert.deepEqual(
      firstSeen,
      Array.from({ length: UPDATES + 1 }, (_x, i) => i),
      'poison messages were tried in order, each after the previous one died',
    );
  },
);

test('FIFO deduplication: a repeated dedupKey within the window is dropped', async () => {
  const messages = [
    { text: 'one', dedupKey: 'k1', groupKey: 'g' },
    { text: 'one again', dedupKey: 'k1', groupKey: 'g' },
    { text: 'two', dedupKey: 'k2', groupKey: 'g' },
  ];
  // (The receiver fails some requests at first: count what it accepted.)
  const accepted = () =>
    receiver.requests.filter((r) => r.path.endsWith('?fifo') && r.status === 200).map((r) => r.json.body);
  await invokeFunction(db.pool, 'dedup', { messages });
  await eventually(() => accepted().length >= 2, 'two messages');
  await invokeFunction(db.pool, 'dedup', {
    messages: [
      { text: 'one, later', dedupKey: 'k1', groupKey: 'g' },
      { text: 'three', dedupKey: 'k3', groupKey: 'g' },
    ],
  });
  await eventually(() => accepted().length >= 3, 'three messages');
  await settled(db.pool);
  assert.deepEqual(accepted(), ['one', 'two', 'three']);
});

test("onDeadMessage: 'block-group' holds a group behind its dead message until it is redriven", async () => {
  await db.pool.query(`INSERT INTO jobs VALUES (1, 0), (2, 0)`);
  await db.pool.query(`UPDATE jobs SET v = v + 1`);
  await db.pool.query(`UPDATE jobs SET v = v + 1`);
  const accepted = (id: number) =>
    receiver.requests
      .filter((r) => r.path.endsWith('?blocking') && r.status === 200 && r.json.body.key.id === id)
      .map((r) => r.json.body.after.v as number);
  // Both rows' first messages fail once (maxAttempts 1) and go dead; their later messages must wait.
  await eventually(
    async () =>
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'blocking' AND state = 'dead'`,
        )
      ).rows[0].n === 2,
    'both heads dead',
  );
  // A sentinel in a third group of the same subscription goes through: the worker has claimed past the heads.
  await db.pool.query(`INSERT INTO jobs VALUES (3, 1)`);
  await eventually(() => accepted(3).length === 1, 'the sentinel group delivered');
  const waiting = await db.pool
    .query(`SELECT d.state, d.attempts FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
      WHERE d.subscription = 'blocking' AND d.state <> 'dead' AND CASE WHEN m.topic = 'jobs' THEN m.body::jsonb -> 'key' ->> 'id' END IN ('1', '2')`);
  assert.deepEqual(
    waiting.rows,
    Array.from({ length: 4 }, () => ({ state: 'pending', attempts: 0 })),
    'the later messages never attempted',
  );
  assert.deepEqual(accepted(1), [], 'row 1 waits behind its dead message');
  assert.deepEqual(accepted(2), [], 'row 2 as well');
  fixed = true;
  const { redrive } = await import('../../src/admin/actions/delivery-actions.js');
  assert.equal(await redrive(db.pool, { subscription: 'blocking' }), 2);
  await eventually(() => accepted(1).length === 3 && accepted(2).length === 3, 'both groups, after redrive');
  assert.deepEqual(accepted(1), [0, 1, 2]);
  assert.deepEqual(accepted(2), [0, 1, 2]);
});

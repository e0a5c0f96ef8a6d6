import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { describeRun, runCli } from '../support/cli.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// Long operations report progress on stderr with --progress (or on a terminal); the result stays alone on stdout.
let db: TestDatabase;
let receiver: WebhookReceiver;
const ROWS = 1500;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  receiver.reply = () => ({ status: 500 });
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { orders: {} },
    captures: { orders: { table: 'orders', topic: 'orders', operations: ['INSERT'] } },
    subscriptions: {
      hook: { topic: 'orders', protocol: 'http', endpoint: receiver.url, deliveryPolicy: { maxAttempts: 1 } },
    },
    functions: { fn: { handler: 'test/fixtures/handlers/publisher.ts' } },
  });
  const rowcast = await startTestRowcast(db.url);
  try {
    await db.pool.query(`INSERT INTO orders SELECT generate_series(1, ${ROWS})`);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.deliveries WHERE state = 'dead'`)).rows[0].n ===
        ROWS,
      'every delivery dead',
      60_000,
    );
  } finally {
    await rowcast.stop();
  }
});

after(async () => {
  await receiver?.close();
  await db?.drop();
});

const killAll = () => db.pool.query(`UPDATE rowcast.deliveries SET state = 'dead', updated_at = now()`);

test('replay and redrive: progress lines on stderr with --progress, none without; the result on stdout', async () => {
  const env = { DATABASE_URL: db.url };
  const replay = await runCli(['replay', 'orders', '--subscription', 'hook', '--since', '1h', '--progress'], { env });
  assert.equal(replay.code, 0, describeRun(replay));
  assert.equal(replay.stdout, `queued ${ROWS} deliveries to hook\n`);
  assert.match(replay.stderr, /^queued 1000…$/m);
  assert.match(replay.stderr, new RegExp(`^queued ${ROWS}…$`, 'm'));

  await killAll();
  const quiet = await runCli(['redrive'], { env });
  assert.equal(quiet.code, 0, describeRun(quiet));
  assert.equal(quiet.stdout, `re-queued ${ROWS} dead deliveries\n`);
  assert.equal(quiet.stderr, '', 'no progress when stderr is not a terminal and --progress is not given');

  await killAll();
  const loud = await runCli(['--progress', 'redrive', '-s', 'hook'], { env });
  assert.equal(loud.code, 0, describeRun(loud));
  assert.equal(loud.stdout, `re-queued ${ROWS} dead deliveries\n`);
  assert.match(loud.stderr, /^re-queued 1000…$/m);
  assert.match(loud.stderr, new RegExp(`^re-queued ${ROWS}…$`, 'm'));

  const bad = await runCli(['replay', 'orders', '--subscription', 'hook', '--since', 'whenever'], { env });
  assert.equal(bad.code, 2, describeRun(bad));
  assert.match(bad.stderr, /--since "whenever" is neither a date/);
});

test('pause and resume --function', async () => {
  const env = { DATABASE_URL: db.url };
  const state = async () =>
    (await db.pool.query(`SELECT state FROM rowcast.functions WHERE name = 'fn'`)).rows[0].state;
  const paused = await runCli(['pause', 'fn', '--function'], { env });
  assert.equal(paused.stdout, 'function fn is paused\n', describeRun(paused));
  assert.equal(await state(), 'paused');
  const resumed = await runCli(['resume', 'fn', '--function'], { env });
  assert.equal(resumed.stdout, 'function fn is active\n', describeRun(resumed));
  assert.equal(await state(), 'active');
  const missing = await runCli(['pause', 'nope', '--function'], { env });
  assert.equal(missing.code, 1, describeRun(missing));
  assert.match(missing.stderr, /No function "nope"/);
});

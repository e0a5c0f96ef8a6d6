import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RowcastConfigInput, RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

const TEST = { timeout: patient(180_000) };
/** A child process compiles the sources with tsx at start: slow on a busy machine. */
const CHILD_START = 90_000;

let db: TestDatabase;
let fanout: WebhookReceiver;
let crash: WebhookReceiver;
let config: RowcastConfigInput;
let configFile: ReturnType<typeof writeConfigFile>;
const runtimes: RowcastRuntime[] = [];
const children: RowcastProcess[] = [];

before(async () => {
  db = await createTestDatabase();
  fanout = await WebhookReceiver.start();
  crash = await WebhookReceiver.start();
  await db.pool.query(`
    CREATE TABLE fanout (id int PRIMARY KEY, note text);
    CREATE TABLE crash (id int PRIMARY KEY, note text);`);
  config = {
    topics: { fanout: {}, crash: {} },
    captures: { fanout: { table: 'fanout', topic: 'fanout' }, crash: { table: 'crash', topic: 'crash' } },
    // Rows: these tests are about delivery rows claimed by two processes, and one's lease expiring (a cursor's
    // ranges: cursor-subscriptions.test.ts, test/faults/25-cursor-kill-loop.test.ts).
    subscriptions: {
      fanout: {
        topic: 'fanout',
        protocol: 'http',
        endpoint: fanout.url,
        deliveryPolicy: { minDelay: '50ms', maxDelay: '200ms' },
        cursor: false,
      },
      // The first attempt is left hanging until its process is killed (well within the timeout); the lease is
      // the timeout plus rowcast's margin, since it is longer than runtime.lease.
      crash: {
        topic: 'crash',
        protocol: 'http',
        endpoint: crash.url,
        deliveryPolicy: { minDelay: '50ms', maxDelay: '200ms', timeout: '3s' },
        cursor: false,
      },
    },
    runtime: { lease: '2s', pollInterval: '200ms', shutdownGrace: '2s', allowPrivateEndpoints: true },
  };
  await applyConfig(db.pool, config);
  configFile = writeConfigFile(config);
});

after(async () => {
  for (const r of runtimes) await r.stop().catch(() => {});
  for (const c of children) {
    c.kill('SIGKILL');
    await c.exited;
  }
  configFile?.remove();
  await fanout?.close();
  await crash?.close();
  await db?.drop();
});

const webhookId = (r: ReceivedRequest) => r.headers['webhook-id'] as string;

/** Adds what the child processes printed to a failure. */
async function explained<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof Error)
      err.message += children.map((c) => `\n--- rowcast pid ${c.pid} printed:\n${c.output}`).join('');
    throw err;
  }
}

function startChild(): RowcastProcess {
  const child = RowcastProcess.start(configFile.file, db.url);
  children.push(child);
  return child;
}

describe('several rowcast processes on one database', () => {
  test('two runtimes share the work: every message delivered, none twice', TEST, async () => {
    // A lease far longer than any request here: a second attempt could only come from a double claim.
    for (let i = 0; i < 2; i++) runtimes.push(await startTestRowcast(db.url, { lease: 60_000 }));
    const rows = 500;
    const perTransaction = 50;
    await Promise.all(
      Array.from({ length: rows / perTransaction }, (_, t) =>
        db.pool.query(`INSERT INTO fanout SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) g`, [
          t * perTransaction + 1,
          (t + 1) * perTransaction,
        ]),
      ),
    );
    const done = async () =>
      (
        await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'fanout' AND state = 'done'`,
        )
      ).rows[0]!.n;
    await eventually(async () => (await done()) === rows, `${rows} deliveries to be done`, 120_000);

    const { rows: messages } = await db.pool.query<{ id: string }>(
      `SELECT id::text FROM rowcast.messages WHERE topic = 'fanout'`,
    );
    assert.equal(messages.length, rows, 'one message per row');
    const okPerId = new Map<string, number>();
    for (const r of fanout.requests)
      if (r.status === 200) okPerId.set(webhookId(r), (okPerId.get(webhookId(r)) ?? 0) + 1);
    assert.deepEqual([...okPerId.keys()].sort(), messages.map((m) => m.id).sort(), 'every message was delivered');
    const twice = [...okPerId].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], 'no message delivered more than once');
    assert.equal(fanout.requests.length, rows, 'no request beyond one per message');
    const ids = new Set(fanout.requests.map((r) => r.json.body.after.id as number));
    assert.equal(ids.size, rows, 'every row arrived');
    const { rows: attempts } = await db.pool.query<{ attempts: number; n: number }>(
      `SELECT attempts, count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'fanout' GROUP BY attempts`,
    );
    assert.deepEqual(attempts, [{ attempts: 1, n: rows }], 'each delivery was claimed once');
    for (const r of runtimes.splice(0)) await r.stop();
  });

  test('SIGKILL mid-delivery: another process delivers it after the lease expires, same webhook-id', TEST, () =>
    explained(sigkill()),
  );

  async function sigkill(): Promise<void> {
    crash.reply = (r) => (r.n === 1 ? 'hang' : { status: 200 });
    const first = startChild();
    await db.pool.query(`INSERT INTO crash VALUES (1, 'in flight when killed')`);
    const hanging = await eventually(() => crash.requests[0], 'the first attempt to reach the subscriber', CHILD_START);
    const id = webhookId(hanging);
    const { rows } = await db.pool.query<{ state: string; attempts: number; lease_owner: string; lease_until: string }>(
      `SELECT d.state, d.attempts, d.lease_owner, floor(extract(epoch FROM d.available_at) * 1000)::bigint AS lease_until
         FROM rowcast.deliveries d WHERE d.message_id = $1`,
      [id],
    );
    const inFlight = rows[0]!;
    assert.equal(inFlight.state, 'in_flight');
    assert.equal(inFlight.attempts, 1);
    assert.ok(inFlight.lease_owner.includes(`:${first.pid}:`), `leased by the child (${inFlight.lease_owner})`);

    first.kill('SIGKILL');
    assert.deepEqual(await first.exit(10_000), { code: null, signal: 'SIGKILL' });
    assert.equal(crash.requests.length, 1, 'nothing else was sent before the kill');

    const second = startChild();
    const ok = await eventually(() => crash.delivered[0], 'the delivery by the second process', CHILD_START);
    assert.equal(webhookId(ok), id, 'the same message id on the retry');
    assert.equal(ok.headers['rowcast-attempt'], '2');
    const leaseUntil = Number(inFlight.lease_until);
    assert.ok(ok.at >= leaseUntil - 50, `retried ${leaseUntil - ok.at} ms before the dead process's lease expired`);
    await eventually(
      async () => {
        const { rows: r } = await db.pool.query(
          `SELECT state, attempts, lease_owner FROM rowcast.deliveries WHERE message_id = $1`,
          [id],
        );
        return r[0].state === 'done' && r[0];
      },
      'the delivery to be done',
      30_000,
    );
    const { rows: final } = await db.pool.query(
      `SELECT state, attempts, lease_owner, last_status FROM rowcast.deliveries WHERE message_id = $1`,
      [id],
    );
    assert.deepEqual(final[0], { state: 'done', attempts: 2, lease_owner: null, last_status: 200 });
    assert.equal(crash.requests.length, 2);

    second.kill('SIGTERM');
    assert.deepEqual(await second.exit(20_000), { code: 0, signal: null });
  }

  test('SIGTERM: an idle rowcast exits with code 0, deregistered', TEST, () => explained(sigterm()));

  async function sigterm(): Promise<void> {
    const child = startChild();
    const id = await child.ready(db.pool, CHILD_START);
    child.kill('SIGTERM');
    // Idle, it has nothing to drain: it exits on its own (the 20 s bound only keeps a hung process from hanging
    // the test; docs/operations.md has the shutdown sequence).
    assert.deepEqual(await child.exit(20_000), { code: 0, signal: null });
    const { rowCount } = await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE id = $1', [id]);
    assert.equal(rowCount, 0, 'a graceful stop removes its dispatcher row');
  }
});

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  type RowcastConfigInput,
  getStatus,
  redrive,
  resumeSubscription,
  type RowcastRuntime,
  startRowcast,
} from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/**
 * Each scenario has its own table, topic, subscription and receiver, so that the tests of this file share one
 * database and one rowcast but never each other's deliveries.
 */
type Policy = NonNullable<NonNullable<RowcastConfigInput['subscriptions']>[string]['deliveryPolicy']>;
const FAST: Policy = { minDelay: '50ms', maxDelay: '200ms', maxAttempts: 10, timeout: '5s' };
const SCENARIOS = {
  flaky: FAST,
  broken: { ...FAST, maxAttempts: 3 },
  throttled: FAST,
  gone: FAST,
  redirect: FAST,
  slow: { ...FAST, timeout: '300ms' },
  reset: FAST,
  // Delivers right away: a later delivery of it shows the worker has claimed since (a negative check's witness).
  witness: FAST,
} satisfies Record<string, Policy>;
type Scenario = keyof typeof SCENARIOS;

const WAIT = 30_000;
const TEST = { timeout: patient(90_000) };

let db: TestDatabase;
let rowcast: RowcastRuntime;
/** What the process logged at warn and above, one parsed line each. */
const logged: Record<string, any>[] = [];
const receivers = {} as Record<Scenario, WebhookReceiver>;

before(async () => {
  db = await createTestDatabase();
  const config: RowcastConfigInput = { topics: {}, captures: {}, subscriptions: {} };
  for (const [name, deliveryPolicy] of Object.entries(SCENARIOS) as [Scenario, Policy][]) {
    receivers[name] = await WebhookReceiver.start();
    await db.pool.query(`CREATE TABLE t_${name} (id int PRIMARY KEY, note text)`);
    config.topics![name] = {};
    config.captures![name] = { table: `t_${name}`, topic: name };
    config.subscriptions![name] = { topic: name, protocol: 'http', endpoint: receivers[name].url, deliveryPolicy };
  }
  await applyConfig(db.pool, config);
  const log = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logged.push(JSON.parse(line));
      callback();
    },
  });
  rowcast = await startRowcast({ databaseUrl: db.url, runtime: FAST_RUNTIME, logger: createLogger('warn', log) });
});

after(async () => {
  await rowcast?.stop();
  for (const r of Object.values(receivers)) await r?.close();
  await db?.drop();
});

interface DeliveryRow {
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  lease_owner: string | null;
  available_at: Date;
}

async function deliveryOf(messageId: string): Promise<DeliveryRow> {
  const { rows } = await db.pool.query<DeliveryRow>(
    'SELECT state, attempts, last_status, last_error, lease_owner, available_at FROM rowcast.deliveries WHERE message_id = $1',
    [messageId],
  );
  assert.equal(rows.length, 1, `one delivery of message ${messageId}`);
  return rows[0]!;
}

const webhookId = (r: ReceivedRequest) => r.headers['webhook-id'] as string;
const attemptOf = (r: ReceivedRequest) => Number(r.headers['rowcast-attempt']);

async function subscriptionStatus(name: string) {
  const s = (await getStatus(db.pool)).subscriptions.find((x) => x.name === name);
  assert.ok(s, `subscription ${name} in status`);
  return s;
}

describe('delivery failures', () => {
  test('500s until the subscriber recovers: retried with the same webhook-id, then delivered', TEST, async () => {
    const receiver = receivers.flaky;
    const failures = 3;
    receiver.reply = (r) => (r.n <= failures ? { status: 500, body: 'try later' } : { status: 200 });
    await db.pool.query(`INSERT INTO t_flaky VALUES (1, 'flaky')`);
    const ok = await eventually(() => receiver.delivered[0], 'the delivery once the subscriber recovers', WAIT);
    const id = webhookId(ok);
    await eventually(async () => (await deliveryOf(id)).state === 'done', 'the delivery to be recorded as done', WAIT);
    const requests = receiver.requests;
    assert.deepEqual(
      requests.map((r) => r.status),
      [500, 500, 500, 200],
    );
    assert.ok(
      requests.every((r) => webhookId(r) === id && r.json.id === id),
      'every attempt carries the same webhook-id',
    );
    assert.deepEqual(requests.map(attemptOf), [1, 2, 3, 4]);
    const row = await deliveryOf(id);
    assert.equal(row.attempts, failures + 1);
    assert.equal(row.last_status, 200);
    assert.equal(row.last_error, 'HTTP 500: try later', 'the last failure is kept for diagnosis');
    assert.equal(row.lease_owner, null);
  });

  test(
    'always failing: dead after maxAttempts, visible in status; redrive delivers it once the subscriber works',
    TEST,
    async () => {
      const receiver = receivers.broken;
      let healthy = false;
      receiver.reply = () => (healthy ? { status: 200 } : { status: 500, body: 'database on fire' });
      await db.pool.query(`INSERT INTO t_broken VALUES (1, 'broken')`);
      const first = await eventually(() => receiver.requests[0], 'the first attempt', WAIT);
      const id = webhookId(first);
      const dead = await eventually(
        async () => {
          const row = await deliveryOf(id);
          return row.state === 'dead' && row;
        },
        'the delivery to be dead',
        WAIT,
      );
      assert.equal(dead.attempts, 3);
      assert.match(dead.last_error ?? '', /^HTTP 500: database on fire/);
      assert.match(dead.last_error ?? '', /after 3 attempts/);
      assert.equal(receiver.requests.length, 3, 'maxAttempts 3: three requests, no more');
      assert.ok(receiver.requests.every((r) => webhookId(r) === id));

      // The last attempt is logged as the delivery going dead, at error level, with what an operator needs.
      const deadLines = logged.filter(
        (l) => l.subscription === 'broken' && l.msg === 'delivery dead: no attempts left',
      );
      assert.equal(deadLines.length, 1, JSON.stringify(logged.filter((l) => l.subscription === 'broken')));
      const deadLine = deadLines[0]!;
      assert.equal(deadLine.level, 50);
      assert.equal(deadLine.message, id);
      assert.equal(deadLine.attempts, 3);
      assert.match(deadLine.error, /^HTTP 500: database on fire.*after 3 attempts/);
      assert.ok(deadLine.redrive, 'says how to send it again');
      assert.equal(
        logged.filter((l) => l.subscription === 'broken' && l.msg === 'delivery attempt failed').length,
        2,
        'the two attempts before it are ordinary failures',
      );

      const status = await subscriptionStatus('broken');
      assert.equal(status.dead, 1);
      assert.equal(status.pending, 0);
      assert.equal(status.inFlight, 0);
      assert.match(status.lastError ?? '', /^HTTP 500/);

      healthy = true;
      assert.equal(await redrive(db.pool, { subscription: 'broken' }), 1);
      const ok = await eventually(() => receiver.delivered[0], 'the redriven delivery', WAIT);
      assert.equal(webhookId(ok), id, 'redrive sends the same message');
      assert.equal(attemptOf(ok), 1, 'with a fresh attempt budget');
      await eventually(async () => (await deliveryOf(id)).state === 'done', 'the redriven delivery to be done', WAIT);
      assert.equal(receiver.requests.length, 4);
      const after = await subscriptionStatus('broken');
      assert.equal(after.dead, 0);
      assert.equal(after.pending, 0);
    },
  );

  for (const status of [429, 503]) {
    test(`${status} with Retry-After: 1 waits a second before the next attempt`, TEST, async () => {
      const receiver = receivers.throttled;
      const seen = new Set<string>();
      receiver.reply = (r) => {
        const first = !seen.has(webhookId(r));
        seen.add(webhookId(r));
        return first ? { status, headers: { 'retry-after': '1' }, body: 'slow down' } : { status: 200 };
      };
      const start = receiver.requests.length;
      await db.pool.query(`INSERT INTO t_throttled VALUES ($1, 'throttled')`, [status]);
      const ok = await eventually(
        () => receiver.delivered.find((r) => r.n > start),
        `the delivery after the ${status}`,
        WAIT,
      );
      const mine = receiver.requests.filter((r) => webhookId(r) === webhookId(ok));
      assert.deepEqual(
        mine.map((r) => r.status),
        [status, 200],
      );
      const gap = mine[1]!.at - mine[0]!.at;
      // The backoff alone (minDelay 50ms) would retry within ~50 ms.
      assert.ok(gap >= 900, `the retry came ${gap} ms after the ${status}, before Retry-After allowed`);
      await eventually(async () => (await deliveryOf(webhookId(ok))).state === 'done', 'the delivery to be done', WAIT);
      const row = await deliveryOf(webhookId(ok));
      assert.equal(row.attempts, 2);
      assert.equal(row.last_error, `HTTP ${status}: slow down`);
    });
  }

  test('410 Gone disables the subscription until it is resumed; nothing is sent meanwhile', TEST, async () => {
    const receiver = receivers.gone;
    let gone = true;
    receiver.reply = () => (gone ? { status: 410, body: 'no such hook' } : { status: 200 });
    await db.pool.query(`INSERT INTO t_gone VALUES (1, 'gone')`);
    const disabled = await eventually(
      async () => {
        const s = await subscriptionStatus('gone');
        return s.state === 'disabled' && s;
      },
      'the subscription to be disabled',
      WAIT,
    );
    assert.match(disabled.stateReason ?? '', /HTTP 410: no such hook/);
    assert.match(disabled.stateReason ?? '', /subscription disabled/);
    assert.equal(receiver.requests.length, 1);
    const id = webhookId(receiver.requests[0]!);
    // The delivery is kept for when the subscription comes back; the attempt is counted.
    let seen: DeliveryRow | undefined;
    await eventually(
      async () => (seen = await deliveryOf(id)).state === 'pending',
      'the delivery to be pending again',
      WAIT,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; last seen: ${JSON.stringify(seen)}; requests: ${receiver.requests.map((r) => r.status).join(', ')}`,
      );
    });
    assert.equal((await deliveryOf(id)).last_status, 410);

    await db.pool.query(`INSERT INTO t_gone VALUES (2, 'while disabled')`);
    await eventually(
      async () => (await subscriptionStatus('gone')).pending === 2,
      'the second change to be routed',
      WAIT,
    );
    // Once both are due, a later delivery to another subscription shows a claim ran that could have taken them.
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT bool_and(available_at <= now()) AS due FROM rowcast.deliveries WHERE subscription = 'gone'`,
          )
        ).rows[0].due,
      'both to be due',
      WAIT,
    );
    await db.pool.query(`INSERT INTO t_witness VALUES (1, 'after the second change')`);
    await eventually(() => receivers.witness.delivered.length === 1, 'the witness delivered', WAIT);
    assert.equal(receiver.requests.length, 1, 'no request while the subscription is disabled');
    const still = await subscriptionStatus('gone');
    assert.equal(still.state, 'disabled');
    assert.equal(still.pending, 2);

    gone = false;
    assert.equal(await resumeSubscription(db.pool, 'gone'), true);
    await eventually(() => receiver.delivered.length === 2, 'both pending deliveries after resume', WAIT);
    assert.equal(receiver.requests.length, 3);
    assert.equal(webhookId(receiver.delivered.find((r) => r.json.body.after.id === 1)!), id);
    // The results of the two attempts are recorded just after their responses.
    const resumed = await eventually(
      async () => {
        const s = await subscriptionStatus('gone');
        return s.pending === 0 && s.inFlight === 0 && s;
      },
      'nothing pending or in flight',
      WAIT,
    );
    assert.equal(resumed.state, 'active');
    assert.equal(resumed.stateReason, null);
    assert.equal((await deliveryOf(id)).state, 'done');
    assert.equal((await deliveryOf(id)).attempts, 2);
  });

  test(
    'a 3xx redirect is not followed: it is a failed attempt, retried at the subscription endpoint',
    TEST,
    async () => {
      const receiver = receivers.redirect;
      const moved = new URL('/moved', receiver.url).toString();
      receiver.reply = (r) =>
        r.path === '/moved'
          ? { status: 200 }
          : r.n <= 2
            ? { status: 302, headers: { location: moved } }
            : { status: 200 };
      await db.pool.query(`INSERT INTO t_redirect VALUES (1, 'redirect')`);
      const ok = await eventually(() => receiver.delivered[0], 'the delivery after the redirects', WAIT);
      const id = webhookId(ok);
      await eventually(async () => (await deliveryOf(id)).state === 'done', 'the delivery to be done', WAIT);
      assert.deepEqual(
        receiver.requests.map((r) => [r.path, r.status, webhookId(r)]),
        [
          ['/hook', 302, id],
          ['/hook', 302, id],
          ['/hook', 200, id],
        ],
        'the Location is never requested',
      );
      const row = await deliveryOf(id);
      assert.equal(row.attempts, 3);
      assert.match(row.last_error ?? '', /^HTTP 302/);
      assert.match(row.last_error ?? '', /redirects are not followed/);
      assert.ok(row.last_error?.includes(moved), 'the error names where the endpoint moved');
    },
  );

  test('a subscriber that never answers: the attempt times out and is retried', TEST, async () => {
    const receiver = receivers.slow;
    receiver.reply = (r) => (r.n === 1 ? 'hang' : { status: 200 });
    await db.pool.query(`INSERT INTO t_slow VALUES (1, 'slow')`);
    const first = await eventually(() => receiver.requests[0], 'the first attempt', WAIT);
    const id = webhookId(first);
    // Observed while the retry waits, or kept after it succeeded.
    const failed = await eventually(
      async () => {
        const row = await deliveryOf(id);
        return row.last_error !== null && row;
      },
      'the timed-out attempt to be recorded',
      WAIT,
    );
    // Ended by its own timeout (rowcast's clock; the timer itself is test/unit/http-post-timeout.test.ts), and
    // retried only after the hanging connection was given up: an order at the receiver, not a gap between arrival
    // times, which would also count how late the receiver saw the first request.
    assert.match(failed.last_error!, /timed out after 300 ms/);
    const ok = await eventually(() => receiver.delivered[0], 'the retry', WAIT);
    assert.equal(webhookId(ok), id);
    assert.equal(attemptOf(ok), 2);
    assert.ok(
      first.closedAfterRequests !== undefined && ok.n > first.closedAfterRequests,
      `the retry (request ${ok.n}) came before the hanging connection was closed (${first.closedAfterRequests ?? 'still open'})`,
    );
    await eventually(async () => (await deliveryOf(id)).state === 'done', 'the delivery to be done', WAIT);
    const row = await deliveryOf(id);
    assert.equal(row.attempts, 2);
    assert.match(row.last_error ?? '', /timed out/);
    assert.equal(receiver.requests.length, 2);
  });

  test('a connection reset is retried, then delivered', TEST, async () => {
    const receiver = receivers.reset;
    receiver.reply = (r) => (r.n === 1 ? 'reset' : { status: 200 });
    await db.pool.query(`INSERT INTO t_reset VALUES (1, 'reset')`);
    const ok = await eventually(() => receiver.delivered[0], 'the delivery after the reset', WAIT);
    const id = webhookId(ok);
    await eventually(async () => (await deliveryOf(id)).state === 'done', 'the delivery to be done', WAIT);
    assert.deepEqual(
      receiver.requests.map((r) => [r.status, webhookId(r), attemptOf(r)]),
      [
        [-1, id, 1],
        [200, id, 2],
      ],
    );
    const row = await deliveryOf(id);
    assert.equal(row.attempts, 2);
    assert.ok(row.last_error, 'the network error is recorded');
    assert.doesNotMatch(row.last_error!, /timed out/);
  });
});

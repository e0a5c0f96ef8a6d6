import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fetch } from 'undici';
import { type DeliveryDetail, getDelivery, type RowcastRuntime, startRowcast } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { describeRun, runCli } from '../support/cli.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { openSse } from '../support/sse-client.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// Endpoints that fail for long are disabled (a subscription's disableAfter): deterministically, by counts and a
// tiny window; their deliveries wait pending, and resume delivers them.
const TOKEN = 'endpoint-disable-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let base: string;
/** The process's warnings and errors, one JSON line each. */
const logLines: Record<string, any>[] = [];
const logs = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) logLines.push(JSON.parse(line));
    done();
  },
});
/** The receiver's origin (its url ends in /hook). */
const origin = () => receiver.url.replace(/\/hook$/, '');
/** Paths whose endpoint answers 500 for now. */
const down = new Set(['/dead', '/slow']);

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  receiver.reply = (r) => {
    if (down.has(r.path)) return { status: 500, body: 'down for the test' };
    // /flaky: odd rows fail, even rows succeed.
    if (r.path === '/flaky') return { status: (r.json as any)?.body?.after?.id % 2 ? 500 : 200 };
    return { status: 200 };
  };
  await db.pool.query(
    'CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY)',
  );
  await applyConfig(db.pool, {
    topics: { a: {}, b: {}, c: {} },
    captures: { a: { table: 'a', topic: 'a' }, b: { table: 'b', topic: 'b' }, c: { table: 'c', topic: 'c' } },
    subscriptions: {
      // Every delivery dead at its first failure; disabled at the third dead one in a row.
      'dead-limit': {
        topic: 'a',
        protocol: 'http',
        endpoint: `${origin()}/dead`,
        deliveryPolicy: { maxAttempts: 1 },
        disableAfter: { deadDeliveries: 3 },
      },
      'a-healthy': { topic: 'a', protocol: 'http', endpoint: `${origin()}/ok` },
      // Retried every ~0.1 s and never dead; disabled once it has failed for a second.
      'slow-fail': {
        topic: 'b',
        protocol: 'http',
        endpoint: `${origin()}/slow`,
        deliveryPolicy: { maxAttempts: 100, minDelay: '50ms', maxDelay: '100ms' },
        disableAfter: '1s',
      },
      // A success between failures resets the count.
      flaky: {
        topic: 'c',
        protocol: 'http',
        endpoint: `${origin()}/flaky`,
        deliveryPolicy: { maxAttempts: 1 },
        disableAfter: { deadDeliveries: 2 },
      },
    },
  });
  rowcast = await startRowcast({
    databaseUrl: db.url,
    runtime: { ...FAST_RUNTIME, http: { port: 0, host: '127.0.0.1', token: TOKEN } },
    logger: createLogger('warn', logs),
  });
  base = `${rowcast.httpUrl!}/api`;
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

async function ok(path: string, init: { method?: string } = {}): Promise<any> {
  const res = await fetch(`${base}${path}`, { method: init.method ?? 'GET', headers: auth });
  const body = await res.text();
  assert.equal(res.status, 200, `${init.method ?? 'GET'} ${path}: ${body}`);
  return JSON.parse(body);
}

/**
 * A subscription's deliveries, one per message of its topic, as the admin API reads them: a row (every delivery, or
 * through a cursor a failed one), or its cursor's state (delivered at the first attempt, or not reached: pending).
 * The messages are the topic's log: its message rows, and its segments' entries where routing wrote segments.
 */
async function deliveries(subscription: string): Promise<DeliveryDetail[]> {
  const { rows } = await db.pool.query<{ seq: string }>(
    `SELECT m.seq::text FROM rowcast.subscriptions s, rowcast.log_messages(s.topic, 0, 9223372036854775807) m
      WHERE s.name = $1 ORDER BY m.seq`,
    [subscription],
  );
  const found: DeliveryDetail[] = [];
  for (const r of rows) found.push(await getDelivery(db.pool, `${subscription}@${r.seq}`));
  // One delivery per message, as counting rows said: no message has a second row.
  const twice = await db.pool.query(
    `SELECT message_id FROM rowcast.deliveries WHERE subscription = $1 GROUP BY 1 HAVING count(*) > 1`,
    [subscription],
  );
  assert.deepEqual(twice.rows, [], `${subscription}: a message with two delivery rows`);
  return found;
}
const states = async (subscription: string): Promise<Record<string, number>> => {
  const n: Record<string, number> = {};
  for (const d of await deliveries(subscription)) n[d.state] = (n[d.state] ?? 0) + 1;
  return n;
};
const sent = (path: string) => receiver.requests.filter((r) => r.path === path).length;

async function metric(sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${rowcast.httpUrl}/metrics`, { headers: auth })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

test('deadDeliveries: the third dead delivery in a row disables the subscription; later deliveries wait pending; resume delivers them', async () => {
  assert.equal(
    await metric('rowcast_subscriptions_disabled_total{subscription="dead-limit",cause="dead_deliveries"}'),
    0,
    'the counter exists from the start',
  );
  const tail = await openSse(`${base}/tail`, auth);
  try {
    await db.pool.query('INSERT INTO a VALUES (1), (2), (3)');
    const sub = await eventually(async () => {
      const s = await ok('/subscriptions/dead-limit');
      return s.state === 'disabled' && s;
    }, 'dead-limit disabled');
    assert.match(
      sub.stateReason,
      /^disabled by disableAfter: 3 deliveries in a row went dead \(limit 3\), failing since \S+; its deliveries wait, pending: fix the endpoint, then rowcast resume dead-limit$/,
    );
    assert.equal(sub.deadInRow, 3);
    assert.ok(sub.failingSince);
    assert.deepEqual(sub.disableAfter, { failingFor: null, deadDeliveries: 3 });
    const event = await eventually(
      () => tail.events.find((e) => e.event === 'subscription'),
      'the disabling in the live tail',
    );
    assert.deepEqual((({ subscription, state, cause }) => ({ subscription, state, cause }))(JSON.parse(event.data)), {
      subscription: 'dead-limit',
      state: 'disabled',
      cause: 'dead_deliveries',
    });
  } finally {
    await tail.close();
  }
  assert.equal(
    await metric('rowcast_subscriptions_disabled_total{subscription="dead-limit",cause="dead_deliveries"}'),
    1,
  );
  const warned = logLines.filter((l) => l.msg?.startsWith('subscription disabled:'));
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.equal(warned[0]!.level, 40, 'a warning');
  assert.deepEqual(
    [warned[0]!.subscription, warned[0]!.cause, warned[0]!.deadInRow, warned[0]!.resume],
    ['dead-limit', 'dead_deliveries', 3, 'rowcast resume dead-limit'],
  );
  // Health and results are written in batches of their own: the third death may disable before its row is dead.
  await eventually(async () => (await states('dead-limit')).dead === 3, 'the three dead rows recorded');
  assert.deepEqual(await states('dead-limit'), { dead: 3 });
  const status = await runCli(['status'], { env: { DATABASE_URL: db.url } });
  assert.match(
    status.stdout,
    /dead-limit\s+a\s+disabled \(disabled by disableAfter: 3 deliveries in a row went dead/,
    describeRun(status),
  );

  // Disabled: new deliveries are created and wait, never sent; the other subscription of the topic carries on.
  await db.pool.query('INSERT INTO a VALUES (4), (5)');
  await eventually(async () => (await states('a-healthy')).done === 5, 'a-healthy delivered all five');
  // a-healthy's deliveries of the same rows are done (the worker has claimed past them): nothing was sent to
  // dead-limit, and the database shows its waiting deliveries were never attempted.
  assert.equal(sent('/dead'), 3);
  assert.deepEqual(
    (await deliveries('dead-limit')).filter((d) => d.state === 'pending').map(({ attempts }) => ({ attempts })),
    [{ attempts: 0 }, { attempts: 0 }],
  );
  assert.deepEqual(await states('dead-limit'), { dead: 3, pending: 2 });

  // Fixed and resumed: the waiting ones are delivered, the health starts afresh; the dead ones wait for redrive.
  down.delete('/dead');
  const resumed = await runCli(['resume', 'dead-limit'], { env: { DATABASE_URL: db.url } });
  assert.equal(resumed.code, 0, describeRun(resumed));
  assert.match(resumed.stdout, /subscription dead-limit is active/);
  await eventually(async () => (await states('dead-limit')).done === 2, 'the two waiting deliveries done');
  const after = await ok('/subscriptions/dead-limit');
  assert.deepEqual([after.state, after.stateReason, after.deadInRow, after.failingSince], ['active', null, 0, null]);
  assert.equal((await ok('/subscriptions/dead-limit/redrive', { method: 'POST' })).redriven, 3);
  await eventually(async () => (await states('dead-limit')).done === 5, 'the redriven ones done');
});

test('failingFor: an endpoint failing for longer than the window is disabled; its delivery stays pending (not dead) and is delivered after resume', async () => {
  await db.pool.query('INSERT INTO b VALUES (1)');
  const sub = await eventually(async () => {
    const s = await ok('/subscriptions/slow-fail');
    return s.state === 'disabled' && s;
  }, 'slow-fail disabled');
  assert.match(
    sub.stateReason,
    /^disabled by disableAfter: every attempt failed for \d+s( \d+ms)? since \S+ \(limit 1s\)/,
  );
  assert.ok(sent('/slow') >= 2, 'it was retried meanwhile');
  const attempts = sent('/slow');
  // Once its delivery is due, a later delivery on another topic shows the worker claimed since: none went to /slow.
  await eventually(
    async () =>
      (
        await db.pool.query(
          `SELECT bool_and(state <> 'pending' OR available_at <= now()) AS due FROM rowcast.deliveries WHERE subscription = 'slow-fail'`,
        )
      ).rows[0].due,
    'its delivery due',
  );
  const healthy = sent('/ok');
  await db.pool.query('INSERT INTO a VALUES (100)');
  await eventually(() => sent('/ok') > healthy, 'a later delivery on topic a');
  assert.equal(sent('/slow'), attempts, 'nothing is sent while disabled');
  // Waiting, not dead: pending, or still leased (in flight) when a retry had been claimed just before the disabling.
  const waiting = await states('slow-fail');
  assert.equal((waiting.pending ?? 0) + (waiting.in_flight ?? 0), 1, JSON.stringify(waiting));
  assert.equal(waiting.dead, undefined);
  assert.equal(await metric('rowcast_subscriptions_disabled_total{subscription="slow-fail",cause="failing_for"}'), 1);

  down.delete('/slow');
  assert.equal((await ok('/subscriptions/slow-fail/resume', { method: 'POST' })).state, 'active');
  await eventually(async () => (await states('slow-fail')).done === 1, 'delivered after resume');
});

test('a success in between resets the count: failures that are not in a row never disable', async () => {
  for (const id of [1, 2, 3, 4]) {
    await db.pool.query('INSERT INTO c VALUES ($1)', [id]);
    await eventually(
      async () =>
        sent('/flaky') === id &&
        (await deliveries('flaky')).filter((d) => d.state === 'done' || d.state === 'dead').length === id,
      `row ${id} finished`,
    );
  }
  assert.deepEqual(await states('flaky'), { dead: 2, done: 2 });
  // The health is written just after the results: wait for the last success to have reset it.
  const sub = await eventually(async () => {
    const s = await ok('/subscriptions/flaky');
    return s.failingSince === null && s;
  }, 'flaky healthy again');
  assert.deepEqual([sub.state, sub.deadInRow], ['active', 0]);
});

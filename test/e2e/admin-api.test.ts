import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fetch } from 'undici';
import { type RowcastConfigInput, type RowcastRuntime, observe } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { openSse } from '../support/sse-client.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const TOKEN = 'admin-api-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const fast = { maxAttempts: 2, minDelay: '50ms', maxDelay: '100ms' } as const;

let db: TestDatabase;
let receiver: WebhookReceiver;
let flaky: WebhookReceiver;
let rowcast: RowcastRuntime;
let base: string;

const config = (): RowcastConfigInput => ({
  topics: { orders: {}, 'traced-out': {} },
  functions: {
    echo: { handler: 'test/fixtures/handlers/trace-echo.ts', minDelay: '50ms', maxDelay: '100ms', timeout: '30s' },
  },
  captures: {
    'orders-cap': { table: 'orders', topic: 'orders' },
    'traced-cap': { table: 'traced', function: 'echo', operations: ['INSERT'] },
  },
  subscriptions: {
    // Rows: the list's items carry what the endpoint last answered (a cursor keeps nothing of a first-time success).
    hook: {
      topic: 'orders',
      protocol: 'http',
      endpoint: `${receiver.url}?token=very-secret-query-token`,
      cursor: false,
    },
    flaky: {
      topic: 'orders',
      protocol: 'http',
      endpoint: flaky.url,
      deliveryPolicy: fast,
      filterPolicy: { op: ['INSERT'] },
    },
    picky: { topic: 'orders', protocol: 'http', endpoint: receiver.url, filterPolicy: { op: ['DELETE'] } },
    'traced-hook': { topic: 'traced-out', protocol: 'http', endpoint: receiver.url },
  },
});

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, flaky, rowcast, close } = await scenario({
    receivers: { receiver: {}, flaky: {} },
    tables: 'CREATE TABLE orders (id int PRIMARY KEY, note text); CREATE TABLE traced (id int PRIMARY KEY)',
    config: (started) => {
      ({ receiver, flaky } = started); // config() reads them
      return config();
    },
    runtime: { http: { port: 0, host: '127.0.0.1', token: TOKEN } },
  }));
  base = `${rowcast.httpUrl!}/api`;
});

after(() => close?.());

async function api<T = any>(
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers: { ...auth, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const ok = async <T = any>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> => {
  const { status, body } = await api<T>(path, init);
  assert.equal(status, 200, `${init.method ?? 'GET'} ${path}: ${JSON.stringify(body)}`);
  return body;
};

/** Resolves once this test's rowcast has reloaded its config after the next change (it hears of it by NOTIFY). */
const nextReload = () =>
  new Promise<void>((resolve) => {
    const off = observe.on('config:reloaded', () => {
      off();
      resolve();
    });
  });
/** The API's detail of order `id`'s delivery to `sub`, a row's or a cursor's: found through the subscription's list. */
async function deliveryOf(sub: string, id: number): Promise<any> {
  const { rows } = await db.pool.query(
    `SELECT id::text FROM rowcast.messages WHERE topic = 'orders' AND body::jsonb -> 'after' ->> 'id' = $1`,
    [String(id)],
  );
  if (!rows[0]) return undefined;
  const listed = (await ok(`/deliveries?subscription=${sub}&limit=500`)).items.find(
    (d: any) => d.messageId === rows[0].id,
  );
  return listed && ok(`/deliveries/${encodeURIComponent(listed.id)}`);
}

/** Inserts order `id` and waits until its delivery to `flaky` (an INSERT subscriber of the same topic) is done. */
async function sentinelDelivered(id: number): Promise<void> {
  await db.pool.query(`INSERT INTO orders VALUES ($1, 'sentinel')`, [id]);
  await eventually(async () => (await deliveryOf('flaky', id))?.state === 'done', `order ${id} delivered to flaky`);
}

async function hookAttempts(id: number) {
  const delivery = await deliveryOf('hook', id);
  return delivery && { state: delivery.state, attempts: delivery.attempts };
}

const on = (r: WebhookReceiver, sub: string) => r.requests.filter((q) => q.headers['rowcast-subscription'] === sub);

describe('admin API: reads', () => {
  test('overview: the chain with counts, rates and lag; endpoints redacted', async () => {
    await db.pool.query(`INSERT INTO orders VALUES (1, 'one'), (2, 'two')`);
    await eventually(() => on(receiver, 'hook').length >= 2, 'two deliveries to hook');
    const overview = await eventually(async () => {
      const o = await ok('/overview');
      return o.subscriptions.find((s: any) => s.name === 'hook')?.deliveredPerMinute >= 2 && o;
    }, 'delivery rates in the overview');
    assert.ok(Date.parse(overview.generatedAt));
    assert.deepEqual(
      overview.captures.map((c: any) => [c.name, c.table, c.target]),
      [
        ['orders-cap', 'public.orders', { kind: 'topic', name: 'orders' }],
        ['traced-cap', 'public.traced', { kind: 'function', name: 'echo' }],
      ],
    );
    assert.deepEqual(overview.captures[0].operations, ['INSERT', 'UPDATE', 'DELETE']);
    assert.ok(overview.captures[0].eventsPerMinute >= 2);
    assert.deepEqual(
      overview.functions.map((f: any) => [f.name, f.state]),
      [['echo', 'active']],
    );
    assert.deepEqual(
      overview.topics.map((t: any) => [t.name, t.fifo]),
      [
        ['orders', false],
        ['traced-out', false],
      ],
    );
    const hook = overview.subscriptions.find((s: any) => s.name === 'hook');
    assert.equal(hook.state, 'active');
    assert.equal(hook.protocol, 'http');
    assert.match(hook.endpoint, /token=\*\*\*/);
    assert.ok(!JSON.stringify(overview).includes('very-secret-query-token'), 'credentials in endpoints are redacted');
    assert.ok(!JSON.stringify(overview).includes('whsec_'), 'no signing secret');
    for (const stage of ['routing', 'invocations', 'deliveries'])
      assert.equal(typeof overview.lag[stage].pending, 'number');
  });

  test('subscriptions and captures, functions, topics: no secrets, ever', async () => {
    const subs = await ok('/subscriptions');
    assert.deepEqual(
      subs.items.map((s: any) => s.name),
      ['flaky', 'hook', 'picky', 'traced-hook'],
    );
    assert.equal(subs.nextCursor, null);
    const one = await ok('/subscriptions/flaky');
    assert.deepEqual(one.filterPolicy, { op: ['INSERT'] });
    assert.equal(one.signed, true);
    assert.equal(one.deliveryPolicy.maxAttempts, 2);
    const secrets = (await db.pool.query('SELECT secret FROM rowcast.subscriptions')).rows.map(
      (r) => r.secret as string,
    );
    for (const body of [subs, one, await ok('/captures'), await ok('/functions'), await ok('/topics')]) {
      for (const s of secrets) assert.ok(!JSON.stringify(body).includes(s), 'a secret leaked');
    }
    const missing = await api('/subscriptions/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
    assert.match(missing.body.error.message, /No subscription "nope"/);
  });

  test('deliveries: filters, keyset pagination, clear 400s', async () => {
    await db.pool.query(`INSERT INTO orders SELECT g, 'bulk' FROM generate_series(10, 14) g`);
    await eventually(() => on(receiver, 'hook').length >= 7, 'seven deliveries to hook');
    await eventually(
      async () => (await ok('/deliveries?subscription=hook&status=done')).items.length >= 7,
      'seven done',
    );
    const first = await ok('/deliveries?subscription=hook&status=done&limit=3');
    assert.equal(first.items.length, 3);
    assert.ok(first.nextCursor);
    const second = await ok(`/deliveries?subscription=hook&status=done&limit=3&cursor=${first.nextCursor}`);
    // A row's id, or a cursor's `subscription@seq`: either way the page's order.
    const position = (id: string) => Number(id.split('@').pop());
    assert.ok(position(second.items[0].id) < position(first.items[2].id), 'newest first, no overlap');
    const item = first.items[0];
    // capture, op, rowKey: the captured row a delivery carries (delivery-search.ts).
    assert.deepEqual(
      Object.keys(item).sort(),
      [
        'attempts',
        'createdAt',
        'deliveredAt',
        'id',
        'lastError',
        'lastStatus',
        'messageId',
        'state',
        'subscription',
        'topic',
        'updatedAt',
        'capture',
        'op',
        'rowKey',
      ].sort(),
    );
    assert.equal(item.topic, 'orders');
    assert.equal(item.lastStatus, 200);
    const byTopic = await ok('/deliveries?topic=orders&limit=500');
    assert.ok(byTopic.items.every((d: any) => d.topic === 'orders'));
    const future = await ok(`/deliveries?since=${new Date(Date.now() + 3_600_000).toISOString()}`);
    assert.equal(future.items.length, 0);

    const bad = await api('/deliveries?status=lost&limit=9999');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'bad_request');
    assert.match(bad.body.error.message, /status: .*"pending"/);
    assert.match(bad.body.error.message, /limit: at most 500/);
    const badCursor = await api('/deliveries?cursor=bm9wZQ');
    assert.equal(badCursor.status, 400);
    assert.match(badCursor.body.error.message, /nextCursor of the previous page/);
    const badTime = await api('/deliveries?since=yesterday');
    assert.equal(badTime.status, 400);
    assert.match(badTime.body.error.message, /since: "yesterday" is neither an ISO 8601 time/);
  });

  test('events and invocations: paginated history', async () => {
    const events = await ok('/events?capture=orders-cap&limit=2');
    assert.equal(events.items.length, 2);
    assert.equal(events.items[0].table, 'public.orders');
    assert.equal(events.items[0].op, 'INSERT');
    assert.ok(events.nextCursor);
    const more = await ok(`/events?capture=orders-cap&limit=2&cursor=${events.nextCursor}`);
    assert.ok(Number(more.items[0].id) < Number(events.items[1].id));
    assert.equal((await ok('/events?table=public.orders&limit=500')).items.length, 7);
    assert.equal((await ok('/events?table=traced')).items.length, 0);

    await db.pool.query('INSERT INTO traced VALUES (1), (2), (3)');
    await eventually(
      async () => (await ok('/invocations?function=echo&status=done')).items.length === 3,
      'three invocations done',
      60_000,
    );
    const page1 = await ok('/invocations?function=echo&limit=2');
    assert.equal(page1.items.length, 2);
    const page2 = await ok(`/invocations?function=echo&limit=2&cursor=${page1.nextCursor}`);
    assert.equal(page2.items.length, 1);
    assert.equal(page2.nextCursor, null);
    assert.equal(new Set([...page1.items, ...page2.items].map((i: any) => i.id)).size, 3);
    assert.equal(page1.items[0].source, 'capture');
  });
});

describe('admin API: failures, dead letters and redrive', () => {
  test('a failing subscriber: attempt log, dead letter, redrive of one delivery, then delivered', async () => {
    flaky.reply = () => ({ status: 500, body: 'receiver is down for the test' });
    await db.pool.query(`INSERT INTO orders VALUES (100, 'for flaky')`);
    const dead = await eventually(
      async () => (await ok('/dead-letters?subscription=flaky')).items.find((d: any) => d.subscription === 'flaky'),
      'a dead letter',
    );
    assert.equal(dead.state, 'dead');
    assert.equal(dead.lastStatus, 500);
    assert.match(dead.lastError, /HTTP 500: receiver is down for the test/);

    const detail = await ok(`/deliveries/${dead.id}`);
    assert.equal(detail.message.topic, 'orders');
    assert.equal(detail.message.attributes.op, 'INSERT');
    assert.equal(JSON.parse(detail.message.body).after.id, 100);
    assert.deepEqual(
      detail.attemptLog.map((a: any) => [a.attempt, a.outcome, a.status]),
      [
        [1, 'failed', 500],
        [2, 'dead', 500],
      ],
    );
    for (const a of detail.attemptLog) {
      assert.ok(Date.parse(a.at));
      assert.equal(typeof a.durationMs, 'number');
      assert.match(a.error, /HTTP 500/);
    }

    const notDead = await api(
      `/deliveries/${(await ok('/deliveries?subscription=hook&status=done&limit=1')).items[0].id}/redrive`,
      { method: 'POST' },
    );
    assert.equal(notDead.status, 409);
    assert.match(notDead.body.error.message, /is done, not dead/);
    assert.equal((await api('/deliveries/99999999/redrive', { method: 'POST' })).status, 404);
    assert.equal((await api('/deliveries/abc')).status, 400);

    flaky.reply = () => ({ status: 200 });
    assert.deepEqual(await ok(`/deliveries/${dead.id}/redrive`, { method: 'POST' }), { redriven: 1 });
    const delivered = await eventually(async () => {
      const d = await ok(`/deliveries/${dead.id}`);
      return d.state === 'done' && d;
    }, 'the redriven delivery delivered');
    assert.deepEqual(
      delivered.attemptLog.map((a: any) => a.outcome),
      ['failed', 'dead', 'redriven', 'delivered'],
    );
    assert.deepEqual(
      delivered.attemptLog.map((a: any) => a.attempt),
      [1, 2, null, 1],
      'the redrive starts a new series of attempts',
    );
    assert.equal(delivered.attemptLog.at(-1).status, 200);
    assert.equal((await ok('/dead-letters?subscription=flaky')).items.length, 0);
  });

  test('redrive of a subscription, with a time window', async () => {
    flaky.reply = () => ({ status: 503 });
    await db.pool.query(`INSERT INTO orders VALUES (101, 'a'), (102, 'b')`);
    await eventually(async () => (await ok('/dead-letters?subscription=flaky')).items.length === 2, 'two dead letters');
    assert.deepEqual(
      await ok('/subscriptions/flaky/redrive', {
        method: 'POST',
        body: { until: new Date(Date.now() - 3_600_000).toISOString() },
      }),
      { redriven: 0 },
    );
    flaky.reply = () => ({ status: 200 });
    assert.deepEqual(await ok('/subscriptions/flaky/redrive', { method: 'POST', body: { since: '1h' } }), {
      redriven: 2,
    });
    await eventually(
      async () =>
        (await ok('/dead-letters?subscription=flaky')).items.length === 0 &&
        (await ok('/subscriptions/flaky')).pending === 0,
      'both delivered',
    );
    const bad = await api('/subscriptions/flaky/redrive', { method: 'POST', body: { since: 'soon', extra: 1 } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /since/);
  });
});

describe('admin API: actions', () => {
  test('pause and resume a subscription and a function', async () => {
    let heard = nextReload();
    const paused = await ok('/subscriptions/hook/pause', { method: 'POST' });
    assert.equal(paused.state, 'paused');
    assert.equal(paused.stateReason, 'paused by an operator');
    await heard; // running processes hear of it by NOTIFY
    const before = on(receiver, 'hook').length;
    await db.pool.query(`INSERT INTO orders VALUES (200, 'while paused')`);
    await eventually(async () => (await ok('/subscriptions/hook')).pending === 1, 'a pending delivery');
    // Not a sleep: later deliveries of the same topic to another subscription are done, so the worker has claimed
    // past hook's (older) delivery, and the database says it was never attempted.
    await sentinelDelivered(201);
    assert.equal(on(receiver, 'hook').length, before, 'nothing delivered while paused');
    assert.deepEqual(await hookAttempts(200), { state: 'pending', attempts: 0 });
    assert.equal((await ok('/subscriptions/hook/resume', { method: 'POST' })).state, 'active');
    await eventually(
      () => on(receiver, 'hook').length === before + 2,
      'both delivered after resume (order 200 and the sentinel)',
    );

    heard = nextReload();
    const fn = await ok('/functions/echo/pause', { method: 'POST' });
    assert.equal(fn.state, 'paused');
    await heard;
    await db.pool.query('INSERT INTO traced VALUES (50)');
    await eventually(async () => (await ok('/functions')).items[0].pending === 1, 'a queued invocation');
    await sentinelDelivered(202); // the process works on: a later event routed and delivered
    assert.equal((await ok('/invocations?function=echo&status=pending')).items.length, 1, 'not run while paused');
    const { rows } = await db.pool.query(
      `SELECT attempts, started_at FROM rowcast.invocations WHERE function = 'echo' AND state = 'pending'`,
    );
    assert.deepEqual(rows, [{ attempts: 0, started_at: null }], 'never attempted');
    assert.equal((await ok('/functions/echo/resume', { method: 'POST' })).state, 'active');
    await eventually(
      async () => (await ok('/invocations?function=echo&status=pending')).items.length === 0,
      'run after resume',
      60_000,
    );
    assert.equal((await api('/functions/nope/pause', { method: 'POST' })).status, 404);
  });

  test('a test message goes to that subscription only', async () => {
    const hookBefore = on(receiver, 'hook').length;
    const { messageId } = await ok('/subscriptions/picky/test', {
      method: 'POST',
      body: { subject: 'hello', message: { ping: true } },
    });
    const got = await eventually(
      () => on(receiver, 'picky').find((r) => r.headers['webhook-id'] === messageId),
      'the test message',
    );
    assert.equal(got.json.subject, 'hello');
    assert.deepEqual(got.json.body, { ping: true });
    assert.equal(got.json.attributes['rowcast-test'], 'true');
    // Deliveries are rows: the message has one, for picky, so nothing more can come (no sleep needed to say so).
    const { rows } = await db.pool.query(`SELECT subscription FROM rowcast.deliveries WHERE message_id = $1`, [
      messageId,
    ]);
    assert.deepEqual(
      rows.map((r) => r.subscription),
      ['picky'],
      'not fanned out to the topic',
    );
    assert.equal(on(receiver, 'hook').length, hookBefore, 'not fanned out to the topic');
    assert.equal((await api('/subscriptions/nope/test', { method: 'POST', body: {} })).status, 404);
  });

  test('filter-policy tester: which subscriptions would receive a message', async () => {
    const r = await ok('/filter-policy/test', {
      method: 'POST',
      body: { topic: 'orders', message: { any: 1 }, attributes: { op: 'DELETE' } },
    });
    assert.deepEqual(
      r.subscriptions.map((s: any) => [s.name, s.matched]),
      [
        ['flaky', false],
        ['hook', true],
        ['picky', true],
      ],
    );
    assert.match(r.subscriptions[0].reason, /does not match/);
    assert.match(r.subscriptions[1].reason, /no filter policy/);
    const all = await ok('/filter-policy/test', { method: 'POST', body: { message: '{}' } });
    assert.equal(all.subscriptions.length, 4);
    assert.equal(
      (await api('/filter-policy/test', { method: 'POST', body: { topic: 'nope', message: {} } })).status,
      404,
    );
    const bad = await api('/filter-policy/test', { method: 'POST', body: { attributes: { op: { nested: true } } } });
    assert.equal(bad.status, 400);
  });

  test('filter-policy tester: says why a policy matches; a message that is broken JSON is refused with its parse error', async () => {
    const r = await ok('/filter-policy/test', {
      method: 'POST',
      body: { topic: 'orders', message: '{"any": 1}', attributes: { op: 'INSERT' } },
    });
    const flaky = r.subscriptions.find((s: any) => s.name === 'flaky');
    assert.equal(flaky.matched, true);
    assert.equal(
      flaky.reason,
      'its filter policy (on the message attributes) matches: op is "INSERT", one of ["INSERT"]',
    );
    const broken = await api('/filter-policy/test', {
      method: 'POST',
      body: { topic: 'orders', message: '{"op": "INSERT",}' },
    });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'bad_request');
    assert.match(
      broken.body.error.message,
      /^Invalid request body: message is not valid JSON \(.+\); fix it, or send plain text that does not start with \{ or \[\.$/,
    );
  });

  test("replay: a capture's events since a time, to one subscription, same message ids", async () => {
    const since = new Date(Date.now() - 600_000).toISOString();
    // Pending deliveries are left alone by a replay: start from a quiet subscription.
    await eventually(async () => {
      const hook = await ok('/subscriptions/hook');
      return hook.pending === 0 && hook.inFlight === 0;
    }, 'hook idle');
    const original = new Set(on(receiver, 'hook').map((r) => r.headers['webhook-id']));
    const before = on(receiver, 'hook').length;
    const events = (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'orders-cap'`))
      .rows[0].n;
    const { replayed } = await ok('/captures/orders-cap/replay', {
      method: 'POST',
      body: { subscription: 'hook', since },
    });
    assert.equal(replayed, events);
    const again = await eventually(
      () => on(receiver, 'hook').length >= before + events && on(receiver, 'hook').slice(before),
      'the replayed messages',
    );
    assert.ok(
      again.every((r) => original.has(r.headers['webhook-id'])),
      'replays carry the original message ids',
    );
    assert.equal(
      (await api('/captures/orders-cap/replay', { method: 'POST', body: { subscription: 'traced-hook', since } }))
        .status,
      409,
    );
    assert.equal(
      (await api('/captures/traced-cap/replay', { method: 'POST', body: { subscription: 'hook', since } })).status,
      409,
    );
    assert.equal(
      (await api('/captures/nope/replay', { method: 'POST', body: { subscription: 'hook', since } })).status,
      404,
    );
    const missing = await api('/captures/orders-cap/replay', { method: 'POST', body: { subscription: 'hook' } });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /since: a time: ISO 8601/);
  });

  test('rotate-secret returns the new secret once and when the previous one expires', async () => {
    const r = await ok('/subscriptions/hook/rotate-secret', { method: 'POST', body: { overlap: '1h' } });
    assert.match(r.secret, /^whsec_/);
    assert.ok(Math.abs(Date.parse(r.previousSecretExpiresAt) - Date.now() - 3_600_000) < 60_000);
    assert.ok(!JSON.stringify(await ok('/subscriptions/hook')).includes(r.secret));
  });
});

describe('admin API: live tail, stats, lag', () => {
  test('the tail streams captured events and deliveries', async () => {
    const tail = await openSse(`${base}/tail`, auth);
    try {
      assert.equal(tail.res.status, 200);
      assert.match(tail.res.headers.get('content-type') ?? '', /text\/event-stream/);
      // The server writes this comment as it adds the client to the tail: from here on it is live.
      await eventually(() => tail.comments.some((c) => c.startsWith('live tail')), 'the tail to be open');
      await db.pool.query(`INSERT INTO orders VALUES (300, 'tail me')`);
      const event = await eventually(
        () => tail.events.find((e) => e.event === 'event' && JSON.parse(e.data).table === 'public.orders'),
        'the event in the tail',
      );
      const data = JSON.parse(event.data);
      assert.equal(data.op, 'INSERT');
      assert.equal(data.capture, 'orders-cap');
      assert.equal(data.topic, 'orders');
      const delivery = await eventually(
        () => tail.events.find((e) => e.event === 'delivery' && JSON.parse(e.data).subscription === 'hook'),
        'a delivery in the tail',
      );
      const d = JSON.parse(delivery.data);
      assert.equal(d.state, 'done');
      assert.equal(d.status, 200);
      assert.ok(d.messageId && d.id && Date.parse(d.at));
    } finally {
      await tail.close();
    }
  });

  test('stats: series of rates and latency percentiles; lag', async () => {
    const stats = await ok('/stats?window=5m&step=1m');
    assert.equal(stats.step, 60);
    assert.ok(stats.series.length >= 5 && stats.series.length <= 6);
    const total = (k: string) => stats.series.reduce((a: number, p: any) => a + p[k], 0);
    assert.ok(total('delivered') >= 10);
    assert.ok(total('failed') >= 2);
    assert.ok(stats.series.some((p: any) => p.latencyP50Ms !== null && p.latencyP99Ms >= p.latencyP50Ms));
    assert.equal((await api('/stats?step=7s')).status, 400);
    assert.equal((await api('/stats?window=2h')).status, 400);
    const lag = await ok('/lag');
    assert.deepEqual(Object.keys(lag).sort(), ['deliveries', 'invocations', 'routing']);
  });
});

describe('admin API: tracing', () => {
  test("a writer's traceparent reaches the webhook, the handler context and what it publishes; invalid ones are dropped", async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL rowcast.traceparent = '${traceparent}'`);
      await client.query(`INSERT INTO orders VALUES (400, 'traced')`);
      await client.query('INSERT INTO traced VALUES (400)');
      await client.query('COMMIT');
      await client.query('BEGIN');
      await client.query(`SET LOCAL rowcast.traceparent = 'not-a-trace'`);
      await client.query(`INSERT INTO orders VALUES (401, 'bad trace')`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const hook = await eventually(
      () => on(receiver, 'hook').find((r) => r.json?.body?.after?.id === 400),
      'the traced change',
    );
    assert.equal(hook.headers.traceparent, traceparent);
    const published = await eventually(
      () => on(receiver, 'traced-hook').find((r) => r.json?.body?.traceparent),
      'what the handler published',
      60_000,
    );
    assert.equal(published.json.body.traceparent, traceparent, 'the handler context exposes it');
    assert.equal(published.headers.traceparent, traceparent, 'its messages carry it');
    const bad = await eventually(
      () => on(receiver, 'hook').find((r) => r.json?.body?.after?.id === 401),
      'the change with a bad traceparent',
    );
    assert.equal(bad.headers.traceparent, undefined);
  });
});

describe('admin API: auth', () => {
  test('without the token: 401 and no data', async () => {
    for (const path of ['/overview', '/deliveries', '/dead-letters', '/subscriptions/hook', '/tail']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      const body = (await res.json()) as any;
      assert.deepEqual(Object.keys(body), ['error']);
      assert.equal(body.error.code, 'unauthorized');
    }
    const wrong = await fetch(`${base}/overview`, { headers: { authorization: 'Bearer wrong' } });
    assert.equal(wrong.status, 401);
    assert.equal((await fetch(`${rowcast.httpUrl}/metrics`)).status, 401);
  });

  test('bodies: none, empty or {} for actions without parameters; malformed JSON is a clear 400', async () => {
    for (const body of [undefined, '', '{}']) {
      const res = await fetch(`${base}/subscriptions/hook/resume`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 200, `body ${JSON.stringify(body)}`);
    }
    const res = await fetch(`${base}/subscriptions/hook/redrive`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"since":',
    });
    assert.equal(res.status, 400);
    const err = (await res.json()) as any;
    assert.equal(err.error.code, 'bad_request');
    assert.match(err.error.message, /not JSON/);
  });

  test("unknown /api routes are JSON 404s in the API's shape", async () => {
    const r = await api('/nope');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
  });
});

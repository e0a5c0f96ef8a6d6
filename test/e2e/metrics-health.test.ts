import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fetch } from 'undici';
import type { RowcastConfigInput, RowcastRuntime } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const TOKEN = 'metrics-test-token';
let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;

const config = (): RowcastConfigInput => ({
  topics: { items: {}, 'from-fn': {} },
  functions: { echo: { handler: 'test/fixtures/handlers/trace-echo.ts', timeout: '30s' } },
  captures: {
    items: { table: 'items', topic: 'items' },
    fn: { table: 'fn_items', function: 'echo', operations: ['INSERT'] },
  },
  subscriptions: {
    ok: { topic: 'items', protocol: 'http', endpoint: receiver.url },
    failing: {
      topic: 'items',
      protocol: 'http',
      endpoint: `${receiver.url}/fail`,
      deliveryPolicy: { maxAttempts: 2, minDelay: '20ms', maxDelay: '50ms' },
    },
  },
});

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, rowcast, close } = await scenario({
    receivers: { receiver: { reply: (r) => (r.path.endsWith('/fail') ? { status: 500 } : { status: 200 }) } },
    tables: 'CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE fn_items (id int PRIMARY KEY)',
    config: (started) => {
      receiver = started.receiver; // config() reads it
      return { ...config(), topics: { ...config().topics, 'traced-out': {} } };
    },
    runtime: { http: { port: 0, host: '127.0.0.1', token: TOKEN } },
  }));
});

after(() => close?.());

const scrape = async () => {
  const res = await fetch(`${rowcast.httpUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
};

/** The value of one sample, e.g. value(text, 'rowcast_pending{stage="routing"}'). */
function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('/metrics', () => {
  // First: before anything was captured or sent. A counter that appears only with its first increment hides that
  // increment from rate() and increase(), and alerts on it see no series at all.
  test('before any work, every capture, function and subscription has its counters, at 0', async () => {
    const text = await scrape();
    for (const sample of [
      'rowcast_events_captured_total{table="public.items",op="INSERT"}',
      'rowcast_events_captured_total{table="public.items",op="UPDATE"}',
      'rowcast_events_captured_total{table="public.items",op="DELETE"}',
      'rowcast_events_captured_total{table="public.fn_items",op="INSERT"}',
      'rowcast_events_routed_total',
      'rowcast_invocations_total{function="echo",outcome="done"}',
      'rowcast_invocations_total{function="echo",outcome="retry"}',
      'rowcast_invocations_total{function="echo",outcome="failed"}',
      ...['ok', 'failing'].flatMap((s) => [
        ...['delivered', 'failed', 'dead'].map(
          (o) => `rowcast_delivery_attempts_total{subscription="${s}",protocol="http",outcome="${o}"}`,
        ),
        `rowcast_dead_letters_total{subscription="${s}"}`,
        `rowcast_delivery_latency_seconds_count{subscription="${s}"}`,
      ]),
    ]) {
      assert.equal(value(text, sample), 0, sample);
    }
    assert.equal(
      value(text, 'rowcast_events_captured_total{table="public.fn_items",op="UPDATE"}'),
      undefined,
      'only the operations a capture takes',
    );
  });

  test('counters, histograms and database gauges, with bounded labels', async () => {
    await scrape(); // the first scrape starts counting captured events
    await db.pool.query('INSERT INTO items SELECT generate_series(1, 3)');
    await db.pool.query('INSERT INTO fn_items VALUES (1)');
    await eventually(
      () => receiver.requests.filter((r) => r.path.endsWith('/fail')).length >= 6 && receiver.delivered.length >= 3,
      'deliveries and failures',
    );
    // Captured events are counted once 5 s old (a late commit is still counted).
    const text = await eventually(
      async () => {
        const t = await scrape();
        return (
          (value(t, 'rowcast_events_captured_total{table="public.items",op="INSERT"}') ?? 0) >= 3 &&
          (value(t, 'rowcast_dead_letters_total{subscription="failing"}') ?? 0) >= 3 &&
          (value(t, 'rowcast_invocations_total{function="echo",outcome="done"}') ?? 0) >= 1 &&
          t
        );
      },
      'captured events, dead letters and the invocation counted',
      60_000,
    );
    assert.equal(value(text, 'rowcast_events_captured_total{table="public.items",op="INSERT"}'), 3);
    assert.equal(value(text, 'rowcast_events_captured_total{table="public.fn_items",op="INSERT"}'), 1);
    assert.ok(
      value(text, 'rowcast_delivery_attempts_total{subscription="ok",protocol="http",outcome="delivered"}')! >= 3,
    );
    assert.ok(
      value(text, 'rowcast_delivery_attempts_total{subscription="failing",protocol="http",outcome="failed"}')! >= 3,
    );
    assert.ok(
      value(text, 'rowcast_delivery_attempts_total{subscription="failing",protocol="http",outcome="dead"}')! >= 3,
    );
    assert.ok(value(text, 'rowcast_delivery_latency_seconds_count{subscription="ok"}')! >= 3);
    assert.ok(value(text, 'rowcast_delivery_latency_seconds_bucket{le="+Inf",subscription="ok"}')! >= 3);
    assert.ok(value(text, 'rowcast_invocations_total{function="echo",outcome="done"}')! >= 1);
    assert.ok(value(text, 'rowcast_invocation_duration_seconds_count{function="echo"}')! >= 1);
    assert.equal(value(text, 'rowcast_deliveries{subscription="failing",state="dead"}'), 3);
    assert.equal(value(text, 'rowcast_deliveries{subscription="ok",state="dead"}'), 0, 'an empty state reports 0');
    assert.equal(value(text, 'rowcast_subscription_state{subscription="ok",state="active"}'), 1);
    assert.equal(value(text, 'rowcast_subscription_state{subscription="ok",state="paused"}'), 0);
    for (const stage of ['routing', 'invocations', 'deliveries']) {
      assert.notEqual(value(text, `rowcast_pending{stage="${stage}"}`), undefined, stage);
      assert.notEqual(value(text, `rowcast_oldest_pending_age_seconds{stage="${stage}"}`), undefined, stage);
    }
    const usage = value(text, 'rowcast_notify_queue_usage_ratio')!;
    assert.ok(usage >= 0 && usage < 0.5, `notify queue usage ${usage}`);
    assert.ok(value(text, 'rowcast_events_routed_total')! >= 3);
    assert.match(text, /^rowcast_process_cpu_seconds_total /m);
    // Every sample is rowcast_-prefixed, and no label carries an id (uuid or long number).
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      assert.match(line, /^rowcast_/);
      assert.doesNotMatch(line, /[0-9a-f]{8}-[0-9a-f]{4}-|(?<!le)="\d{3,}"/, line);
    }
  });

  test('needs the token', async () => {
    assert.equal((await fetch(`${rowcast.httpUrl}/metrics`)).status, 401);
  });
});

describe('/readyz', () => {
  test('checks the database, migrations, the listener and draining; a pending migration makes it 503', async () => {
    const ready = await eventually(async () => {
      const res = await fetch(`${rowcast.httpUrl}/readyz`);
      return res.status === 200 && ((await res.json()) as any);
    }, 'ready');
    assert.deepEqual(ready.checks, { database: true, migrations: true, listener: true, accepting: true });
    const { rows } = await db.pool.query(
      `DELETE FROM rowcast.schema_migrations WHERE id = (SELECT max(id) FROM rowcast.schema_migrations) RETURNING *`,
    );
    try {
      const res = await fetch(`${rowcast.httpUrl}/readyz`);
      assert.equal(res.status, 503);
      const body = (await res.json()) as any;
      assert.equal(body.status, 'not ready');
      assert.match(body.checks.migrations, /^pending: \d{3}_\w+ \(run rowcast migrate\)$/);
    } finally {
      const r = rows[0];
      const cols = Object.keys(r);
      await db.pool.query(
        `INSERT INTO rowcast.schema_migrations (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
        cols.map((c) => r[c]),
      );
    }
    assert.equal((await fetch(`${rowcast.httpUrl}/readyz`)).status, 200);
  });
});

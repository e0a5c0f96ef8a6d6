import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import { tracing } from '../../src/observability/tracing.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { BROKERS, runId } from '../support/brokers.js';

// OpenTelemetry spans exported over OTLP/HTTP (JSON) to a real collector stand-in on loopback, checked against what
// the webhook receiver got: the spans continue the writer's trace, and subscribers see rowcast's spans as parents.

let db: TestDatabase;
let receiver: WebhookReceiver;
let collector: WebhookReceiver;
const STREAM_PREFIX = `rowcast-tracing-${runId()}`;

const config = (): RowcastConfigInput => ({
  topics: { orders: {}, 'traced-out': {}, streamed: {} },
  functions: {
    echo: { handler: 'test/fixtures/handlers/trace-echo.ts', minDelay: '50ms', maxDelay: '100ms', timeout: '30s' },
  },
  captures: {
    'orders-cap': { table: 'orders', topic: 'orders' },
    'traced-cap': { table: 'traced', function: 'echo', operations: ['INSERT'] },
    'streamed-cap': { table: 'streamed', topic: 'streamed' },
  },
  subscriptions: {
    hook: {
      topic: 'orders',
      protocol: 'http',
      endpoint: `${receiver.url}?token=query-secret`,
      deliveryPolicy: { minDelay: '50ms', maxDelay: '100ms', maxAttempts: 3 },
    },
    'traced-hook': { topic: 'traced-out', protocol: 'http', endpoint: receiver.url },
    'to-redis': {
      topic: 'streamed',
      protocol: 'redis',
      options: { url: BROKERS.redis, stream: `${STREAM_PREFIX}:{topic}` },
    },
  },
});

const WRITER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const WRITER_SPAN = '00f067aa0ba902b7';

/** Writes in one transaction that sets rowcast.traceparent (when given), as an instrumented application would. */
async function write(sql: string, traceparent?: string): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    if (traceparent) await client.query(`SET LOCAL rowcast.traceparent = '${traceparent}'`);
    await client.query(sql);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number; message?: string };
  attrs: Record<string, unknown>;
  resource: Record<string, unknown>;
}

/** Every span the collector received, from OTLP JSON (ids in hex, attribute values typed). */
function exportedSpans(): ExportedSpan[] {
  const flat = (attributes: { key: string; value: Record<string, unknown> }[] = []) =>
    Object.fromEntries(attributes.map((a) => [a.key, Object.values(a.value)[0]]));
  return collector.requests
    .filter((r) => r.path === '/v1/traces')
    .flatMap((r) =>
      (r.json?.resourceSpans ?? []).flatMap((rs: any) =>
        (rs.scopeSpans ?? []).flatMap((ss: any) =>
          (ss.spans ?? []).map((s: any) => ({
            ...s,
            attrs: flat(s.attributes),
            resource: flat(rs.resource?.attributes),
          })),
        ),
      ),
    );
}

const parts = (traceparent: string) => {
  const [version, traceId, spanId, flags] = traceparent.split('-');
  return { version, traceId, spanId, flags };
};

// OTLP SpanKind and StatusCode values.
const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
const STATUS_ERROR = 2;

before(async () => {
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  collector = await WebhookReceiver.start();
  collector.reply = () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' });
  await db.pool.query(
    'CREATE TABLE orders (id int PRIMARY KEY, note text); CREATE TABLE traced (id int PRIMARY KEY); CREATE TABLE streamed (id int PRIMARY KEY)',
  );
  await applyConfig(db.pool, config());
});

after(async () => {
  const redis = new Redis(BROKERS.redis);
  await redis.del(`${STREAM_PREFIX}:streamed`).finally(() => redis.disconnect());
  await receiver?.close();
  await collector?.close();
  await db?.drop();
});

const hookRequest = (id: number) =>
  receiver.requests.find(
    (r) => r.headers['rowcast-subscription'] === 'hook' && r.json?.body?.after?.id === id && r.status === 200,
  );

describe('tracing off (no endpoint configured)', () => {
  test("no SDK is loaded, nothing is exported, and the writer's traceparent is passed on as is", async () => {
    const rowcast = await startTestRowcast(db.url, {}, parseConfig(config(), 'test config').functions);
    try {
      const traceparent = `00-${WRITER_TRACE}-${WRITER_SPAN}-01`;
      await write('INSERT INTO orders VALUES (1)', traceparent);
      const hook = await eventually(() => hookRequest(1), 'the webhook');
      assert.equal(hook.headers.traceparent, traceparent);
      assert.equal(tracing.enabled, false);
    } finally {
      await rowcast.stop();
    }
    assert.equal(collector.requests.length, 0, 'no request to any collector');
    // The OpenTelemetry packages load as CommonJS: had anything imported them, they would be in require's cache.
    // (The API alone is loaded anyway, by prom-client's metrics; the SDK and the exporter must not be.)
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter(
      (path) => path.includes('@opentelemetry') && !path.includes('@opentelemetry/api/'),
    );
    assert.deepEqual(loaded, [], 'no OpenTelemetry SDK or exporter module loaded');
  });
});

describe('tracing on (runtime.tracing.endpoint)', () => {
  let rowcast: RowcastRuntime;

  before(async () => {
    // Exports every 100 ms instead of 5 s: the SDK reads the standard variable.
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    rowcast = await startTestRowcast(
      db.url,
      { tracing: { endpoint: collector.url.replace(/\/hook$/, ''), serviceName: 'rowcast-test' } },
      parseConfig(config(), 'test config').functions,
    );
    assert.equal(tracing.enabled, true);
  });

  after(async () => {
    await rowcast?.stop();
    delete process.env.OTEL_BSP_SCHEDULE_DELAY;
  });

  test("a delivery span continues the writer's trace, and the webhook's traceparent is that span", async () => {
    await write('INSERT INTO orders VALUES (2)', `00-${WRITER_TRACE}-${WRITER_SPAN}-01`);
    const hook = await eventually(() => hookRequest(2), 'the webhook');
    const sent = parts(String(hook.headers.traceparent));
    assert.equal(sent.traceId, WRITER_TRACE, 'same trace as the writer');
    assert.notEqual(sent.spanId, WRITER_SPAN, "the parent the subscriber sees is rowcast's span, not the writer's");
    assert.equal(sent.flags, '01');
    const span = await eventually(
      () => exportedSpans().find((s) => s.spanId === sent.spanId),
      'the delivery span',
      20_000,
    );
    assert.equal(span.traceId, WRITER_TRACE);
    assert.equal(span.parentSpanId, WRITER_SPAN, "child of the writer's span");
    assert.equal(span.name, 'POST');
    assert.equal(span.kind, KIND.CLIENT);
    assert.equal(span.attrs['rowcast.subscription'], 'hook');
    assert.equal(Number(span.attrs['rowcast.attempt']), 1);
    assert.equal(span.attrs['messaging.message.id'], hook.headers['webhook-id']);
    assert.equal(Number(span.attrs['http.response.status_code']), 200);
    assert.equal(span.attrs['server.address'], '127.0.0.1');
    assert.notEqual(span.status?.code, STATUS_ERROR);
    assert.ok(!JSON.stringify(span).includes('query-secret'), 'no endpoint path or query in the span');
    assert.equal(span.resource['service.name'], 'rowcast-test');
  });

  test('a failed attempt is an error span; the retry is a new span of the same trace', async () => {
    let failures = 0;
    receiver.reply = (r) =>
      r.json?.body?.after?.id === 3 && failures++ === 0 ? { status: 503, body: 'busy' } : { status: 200 };
    try {
      await write('INSERT INTO orders VALUES (3)', `00-${WRITER_TRACE}-${WRITER_SPAN}-01`);
      await eventually(() => hookRequest(3), 'the retried webhook');
    } finally {
      receiver.reply = () => ({ status: 200 });
    }
    const attempts = receiver.requests.filter((r) => r.json?.body?.after?.id === 3);
    assert.equal(attempts.length, 2);
    const [failed, ok] = attempts.map((r) => parts(String(r.headers.traceparent)));
    assert.notEqual(failed!.spanId, ok!.spanId, 'one span per attempt');
    const spans = await eventually(
      () => {
        const all = exportedSpans();
        const pair = [all.find((s) => s.spanId === failed!.spanId), all.find((s) => s.spanId === ok!.spanId)];
        return pair.every(Boolean) && (pair as ExportedSpan[]);
      },
      "both attempts' spans",
      20_000,
    );
    const [first, second] = spans as [ExportedSpan, ExportedSpan];
    assert.equal(first.status?.code, STATUS_ERROR);
    assert.match(first.status?.message ?? '', /HTTP 503/);
    assert.equal(Number(first.attrs['http.response.status_code']), 503);
    assert.equal(first.attrs['error.type'], '503');
    assert.equal(Number(first.attrs['rowcast.attempt']), 1);
    assert.equal(Number(second.attrs['rowcast.attempt']), 2);
    for (const s of spans) assert.equal(s.parentSpanId, WRITER_SPAN);
  });

  test("without a writer's traceparent, the delivery span starts a new trace", async () => {
    await write('INSERT INTO orders VALUES (4)');
    const hook = await eventually(() => hookRequest(4), 'the webhook');
    const sent = parts(String(hook.headers.traceparent));
    assert.match(sent.traceId!, /^[0-9a-f]{32}$/);
    assert.notEqual(sent.traceId, WRITER_TRACE);
    const span = await eventually(
      () => exportedSpans().find((s) => s.spanId === sent.spanId),
      'the root delivery span',
      20_000,
    );
    assert.equal(span.traceId, sent.traceId);
    assert.ok(!span.parentSpanId, 'a root span');
  });

  test('a broker delivery: a messaging "send" span, its context in the stream entry', async () => {
    await write('INSERT INTO streamed VALUES (1)', `00-${WRITER_TRACE}-${WRITER_SPAN}-01`);
    const redis = new Redis(BROKERS.redis);
    try {
      const entry = await eventually(
        async () => (await redis.xrange(`${STREAM_PREFIX}:streamed`, '-', '+'))[0],
        'the stream entry',
      );
      const fields = Object.fromEntries(entry[1].flatMap((v, i, all) => (i % 2 ? [] : [[v, all[i + 1]]])));
      const sent = parts(String(fields.trace));
      const span = await eventually(
        () => exportedSpans().find((s) => s.spanId === sent.spanId),
        'the send span',
        20_000,
      );
      assert.equal(span.traceId, WRITER_TRACE);
      assert.equal(span.parentSpanId, WRITER_SPAN);
      assert.equal(span.kind, KIND.PRODUCER);
      assert.equal(
        span.name,
        `send ${STREAM_PREFIX}:{topic}`,
        'named after the destination template (low cardinality)',
      );
      assert.equal(span.attrs['messaging.system'], 'redis');
      assert.equal(span.attrs['messaging.operation.type'], 'send');
      assert.equal(span.attrs['messaging.destination.name'], `${STREAM_PREFIX}:streamed`);
      assert.equal(span.attrs['messaging.destination.template'], `${STREAM_PREFIX}:{topic}`);
      assert.equal(span.attrs['messaging.message.id'], fields.id);
      assert.equal(span.attrs['rowcast.subscription'], 'to-redis');
      assert.equal(span.attrs['rowcast.outcome'], 'delivered');
      assert.ok(!JSON.stringify(span).includes('redis://'), 'no broker URL in the span');
    } finally {
      redis.disconnect();
    }
  });

  test('a function in the chain: invocation span under the writer, its publish delivered under it', async () => {
    await write('INSERT INTO traced VALUES (1)', `00-${WRITER_TRACE}-${WRITER_SPAN}-01`);
    const published = await eventually(
      () =>
        receiver.requests.find((r) => r.headers['rowcast-subscription'] === 'traced-hook' && r.json?.body?.traceparent),
      'what the handler published',
      60_000,
    );
    // The handler's context.traceparent is its invocation span.
    const handlerContext = parts(published.json.body.traceparent);
    assert.equal(handlerContext.traceId, WRITER_TRACE);
    const invocation = await eventually(
      () => exportedSpans().find((s) => s.spanId === handlerContext.spanId),
      'the invocation span',
      20_000,
    );
    assert.equal(invocation.name, 'echo');
    assert.equal(invocation.kind, KIND.CONSUMER);
    assert.equal(invocation.parentSpanId, WRITER_SPAN);
    assert.equal(invocation.attrs['faas.name'], 'echo');
    assert.match(String(invocation.attrs['faas.invocation_id']), /^[0-9a-f-]{36}$/);
    assert.equal(Number(invocation.attrs['rowcast.attempt']), 1);
    const { rows } = await db.pool.query(`SELECT id::text FROM rowcast.invocations WHERE function = 'echo'`);
    assert.ok(
      rows.some((r) => r.id === invocation.attrs['faas.invocation_id']),
      "faas.invocation_id is the invocation's id",
    );
    // The message it published is delivered in a span under the invocation, which the subscriber sees as its parent.
    const sent = parts(String(published.headers.traceparent));
    const delivery = await eventually(
      () => exportedSpans().find((s) => s.spanId === sent.spanId),
      'the delivery span of the published message',
      20_000,
    );
    assert.equal(delivery.traceId, WRITER_TRACE);
    assert.equal(delivery.parentSpanId, invocation.spanId);
    assert.equal(delivery.attrs['rowcast.subscription'], 'traced-hook');
  });
});

describe('tracing on (OTEL_* environment variables)', () => {
  test('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turns it on, OTEL_SERVICE_NAME names the service', async () => {
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = collector.url.replace(/\/hook$/, '/v1/traces');
    process.env.OTEL_SERVICE_NAME = 'rowcast-from-env';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    const rowcast = await startTestRowcast(db.url, {}, parseConfig(config(), 'test config').functions);
    try {
      assert.equal(tracing.enabled, true);
      await write('INSERT INTO orders VALUES (5)', `00-${WRITER_TRACE}-${WRITER_SPAN}-01`);
      const hook = await eventually(() => hookRequest(5), 'the webhook');
      const sent = parts(String(hook.headers.traceparent));
      const span = await eventually(
        () => exportedSpans().find((s) => s.spanId === sent.spanId),
        'the delivery span',
        20_000,
      );
      assert.equal(span.parentSpanId, WRITER_SPAN);
      assert.equal(span.resource['service.name'], 'rowcast-from-env');
    } finally {
      await rowcast.stop();
      for (const name of ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SERVICE_NAME', 'OTEL_BSP_SCHEDULE_DELAY'])
        delete process.env[name];
    }
    assert.equal(tracing.enabled, false, 'off again once the last runtime stopped');
  });
});

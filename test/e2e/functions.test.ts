import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RowcastConfigInput, listInvocations, invokeFunction } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { mostAtOnce } from '../support/spans.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const handler = (name: string) => `test/fixtures/handlers/${name}.ts`;
const fast = { minDelay: '50ms', maxDelay: '100ms' } as const;

let db: TestDatabase;
let receiver: WebhookReceiver;

const config = (): RowcastConfigInput => ({
  topics: { out: {}, failures: {}, in: {} },
  functions: {
    publisher: {
      handler: handler('publisher'),
      environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-2:123456789100:out' },
      ...fast,
    },
    flaky: { handler: handler('flaky'), maxAttempts: 3, ...fast, onFailure: { topic: 'failures' } },
    failing: { handler: handler('always-fails'), maxAttempts: 2, ...fast, onFailure: { topic: 'failures' } },
    slow: { handler: handler('slow'), timeout: '300ms', maxAttempts: 1, onFailure: { topic: 'failures' } },
    blocker: { handler: handler('blocker'), timeout: '500ms', maxAttempts: 1 },
    overlap: { handler: handler('overlap'), concurrency: 4, timeout: '5s' },
    crasher: { handler: handler('crasher'), maxAttempts: 1, timeout: '10s', memoryLimitMb: 32 },
    aged: {
      handler: handler('publisher'),
      maxEventAge: '1s',
      environment: { ENV_TOPIC_ARN: 'out' },
      onFailure: { topic: 'failures' },
    },
    paused: { handler: handler('publisher'), concurrency: 0, environment: { ENV_TOPIC_ARN: 'out' } },
    callback: { handler: handler('callback-style') },
    'slow-init': { handler: handler('slow-init'), timeout: '500ms', maxAttempts: 1 },
    relay: { handler: handler('publisher'), environment: { ENV_TOPIC_ARN: 'out' } },
  },
  captures: { items: { table: 'items', function: 'publisher', operations: ['INSERT'] } },
  subscriptions: {
    out: { topic: 'out', protocol: 'http', endpoint: receiver.url },
    failures: { topic: 'failures', protocol: 'http', endpoint: receiver.url },
    'in-to-relay': { topic: 'in', protocol: 'function', function: 'relay' },
  },
});

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    tables: 'CREATE TABLE items (id bigint PRIMARY KEY, name text)',
    config: (started) => ((receiver = started.receiver), config()),
  }));
});

after(() => close?.());

const on = (sub: string) => receiver.requests.filter((r) => r.headers['rowcast-subscription'] === sub);
const invocation = async (id: string) =>
  (await db.pool.query('SELECT * FROM rowcast.invocations WHERE id = $1', [id])).rows[0];

describe('functions', () => {
  test('a capture invokes its function, which publishes the change; history records it', async () => {
    await db.pool.query(`INSERT INTO items VALUES (1, 'first')`);
    const got = await eventually(
      () => on('out').find((r) => r.json.body?.after?.name === 'first'),
      'the published change',
    );
    assert.equal(got.json.subject, 'from publisher');
    assert.equal(got.json.body.op, 'INSERT');
    const [inv] = await listInvocations(db.pool, { function: 'publisher' });
    assert.equal(inv!.state, 'done');
    assert.equal(inv!.source, 'capture');
    assert.deepEqual(inv!.published, [got.json.id]);
    assert.match(inv!.result ?? '', /Notification sent:/);
  });

  test('a rolled-back transaction invokes nothing', async () => {
    const client = await db.pool.connect();
    await client.query('BEGIN');
    await client.query(`INSERT INTO items VALUES (2, 'rolled back')`);
    await client.query(
      `SELECT * FROM aws_lambda.invoke('publisher', '{"x": "rolled back"}'::json, invocation_type => 'Event')`,
    );
    await client.query('ROLLBACK');
    client.release();
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM rowcast.invocations WHERE payload LIKE '%rolled back%'`,
    );
    assert.equal(rows[0].n, 0);
  });

  test('a handler that throws is retried; only the successful attempt publishes', async () => {
    const id = await invokeFunction(db.pool, 'flaky', { id: 'flaky-1' });
    await eventually(async () => (await invocation(id)).state === 'done', 'the third attempt to succeed', 20_000);
    const inv = await invocation(id);
    assert.equal(inv.attempts, 3);
    assert.match(inv.last_error, /flaky failure on attempt 2/);
    await eventually(() => on('out').some((r) => r.json.body?.event?.id === 'flaky-1'), 'the published message');
    const published = on('out').filter((r) => r.json.body?.event?.id === 'flaky-1');
    assert.deepEqual(
      published.map((r) => r.json.body.attempt),
      [3],
      'attempts 1 and 2 published nothing',
    );
  });

  test('a handler that always throws goes to the on-failure topic with the event, error, attempts and function', async () => {
    const id = await invokeFunction(db.pool, 'failing', { order: 42 });
    const record = await eventually(
      () => on('failures').find((r) => r.json.body?.requestContext?.requestId === id),
      'the failure record',
      20_000,
    );
    const body = record.json.body;
    assert.equal(body.requestContext.condition, 'RetriesExhausted');
    assert.equal(body.requestContext.approximateInvokeCount, 2);
    assert.equal(body.requestContext.functionName, 'failing');
    assert.deepEqual(body.requestPayload, { order: 42 });
    assert.equal(body.responsePayload.errorType, 'TypeError');
    assert.equal(body.responsePayload.errorMessage, 'always fails');
    assert.equal((await invocation(id)).state, 'failed');
    assert.ok(!on('out').some((r) => r.json.body === 'never delivered'));
  });

  test('a timeout is a failure and publishes nothing', async () => {
    const id = await invokeFunction(db.pool, 'slow', {});
    await eventually(async () => (await invocation(id)).state === 'failed', 'the timed-out invocation to fail', 20_000);
    assert.match((await invocation(id)).last_error, /timed out after 300 ms/);
    await eventually(
      () => on('failures').some((r) => r.json.body?.requestContext?.requestId === id),
      'the failure record',
    );
    assert.ok(!on('out').some((r) => r.json.body === 'too late'));
  });

  test('an event older than maxEventAge is not run; it goes to the on-failure topic', async () => {
    await db.pool.query(
      `INSERT INTO rowcast.invocations (function, payload, source, created_at) VALUES ('aged', '{"old": true}', 'api', now() - interval '1 hour')`,
    );
    const record = await eventually(
      () => on('failures').find((r) => r.json.body?.requestContext?.functionName === 'aged'),
      'the age failure record',
    );
    assert.equal(record.json.body.requestContext.condition, 'EventAgeExceeded');
    assert.equal(record.json.body.requestContext.approximateInvokeCount, 0);
    assert.ok(!on('out').some((r) => r.json.body?.old === true), 'the handler never ran');
  });

  test('concurrency N: never more than N at once under a burst of 1,000, none lost', async () => {
    await db.pool.query(`SELECT rowcast.invoke('overlap', '{"ms": 3}', 'api') FROM generate_series(1, 1000)`);
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM rowcast.invocations WHERE function = 'overlap' AND state = 'done'`,
          )
        ).rows[0].n === 1000,
      'all 1,000 invocations',
      60_000,
    );
    const { rows } = await db.pool.query(`SELECT result FROM rowcast.invocations WHERE function = 'overlap'`);
    const spans = rows.map((r) => JSON.parse(r.result) as { start: number; end: number });
    const most = mostAtOnce(spans);
    assert.equal(spans.length, 1000);
    assert.ok(most <= 4, `at most 4 ran at once, saw ${most}`);
  });

  test('concurrency N: N invocations run at once (each waits for the other N - 1 to enter before it returns)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rowcast-barrier-'));
    try {
      const ids = await Promise.all(
        Array.from({ length: 4 }, () => invokeFunction(db.pool, 'overlap', { barrier: { dir, n: 4 }, ms: 0 })),
      );
      await eventually(
        async () => (await Promise.all(ids.map(invocation))).every((i) => i.state === 'done' || i.state === 'failed'),
        'the 4 invocations to end',
        30_000,
      );
      for (const id of ids)
        assert.deepEqual(
          [(await invocation(id)).state, (await invocation(id)).attempts],
          ['done', 1],
          `invocation ${id} met the other 3 at the barrier`,
        );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('concurrency 0 pauses a function: its invocations wait', async () => {
    const id = await invokeFunction(db.pool, 'paused', {});
    // A later invocation of another function runs to its end: the workers are working; this one was never started.
    const later = await invokeFunction(db.pool, 'publisher', { while: 'paused' });
    await eventually(async () => (await invocation(later)).state === 'done', 'a later invocation of another function');
    assert.deepEqual([(await invocation(id)).state, (await invocation(id)).attempts], ['pending', 0]);
  });

  test('a handler that blocks its thread forever does not stop the others', async () => {
    const blocked = await invokeFunction(db.pool, 'blocker', {});
    await eventually(async () => (await invocation(blocked)).state === 'in_flight', 'the blocker to start');
    const id = await invokeFunction(db.pool, 'publisher', { while: 'blocked' });
    await eventually(
      () => on('out').some((r) => r.json.body?.while === 'blocked'),
      'the other function to publish',
      10_000,
    );
    await eventually(async () => (await invocation(blocked)).state === 'failed', 'the blocked one to time out');
    assert.equal((await invocation(id)).state, 'done');
  });

  test('a handler that crashes its thread or leaks past its heap limit fails that invocation, nothing else', async () => {
    const thrown = await invokeFunction(db.pool, 'crasher', { mode: 'throw' });
    const leaked = await invokeFunction(db.pool, 'crasher', { mode: 'leak' });
    await eventually(
      async () => (await invocation(thrown)).state === 'failed' && (await invocation(leaked)).state === 'failed',
      'both to fail',
      30_000,
    );
    assert.match((await invocation(thrown)).last_error, /uncaught, outside the handler/);
    assert.match((await invocation(leaked)).last_error, /memory/i);
    const id = await invokeFunction(db.pool, 'publisher', { after: 'crash' });
    await eventually(() => on('out').some((r) => r.json.body?.after === 'crash'), 'a later invocation to run');
    assert.equal((await invocation(id)).state, 'done');
  });

  test('a function subscribed to a topic is invoked once per message, even when the delivery repeats', async () => {
    const { rows } = await db.pool.query(
      `INSERT INTO rowcast.messages (topic, subject, body) VALUES ('in', 'hello', '{"greeting": "hi"}') RETURNING id::text`,
    );
    const messageId = rows[0].id as string;
    await db.pool.query(`INSERT INTO rowcast.deliveries (message_id, subscription) VALUES ($1, 'in-to-relay')`, [
      messageId,
    ]);
    await db.pool.query(`SELECT pg_notify('rowcast_config', '')`);
    const got = await eventually(() => on('out').find((r) => r.json.body?.id === messageId), 'the relayed envelope');
    assert.equal(got.json.body.topic, 'in');
    assert.deepEqual(got.json.body.body, { greeting: 'hi' });
    // At-least-once: the same message delivered again queues no second invocation.
    await db.pool.query(`UPDATE rowcast.deliveries SET state = 'pending', available_at = now() WHERE message_id = $1`, [
      messageId,
    ]);
    await db.pool.query(`SELECT pg_notify('rowcast_config', '')`);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT state FROM rowcast.deliveries WHERE message_id = $1`, [messageId])).rows[0]
          .state === 'done',
      'the repeated delivery',
    );
    const invs = await db.pool.query(`SELECT source FROM rowcast.invocations WHERE message_id = $1`, [messageId]);
    assert.deepEqual(invs.rows, [{ source: 'subscription' }]);
  });

  test("loading the module (the init phase) does not count against the invocation's timeout", async () => {
    const id = await invokeFunction(db.pool, 'slow-init', { n: 7 });
    await eventually(
      async () => ['done', 'failed'].includes((await invocation(id)).state),
      'the slow-loading handler',
      20_000,
    );
    const inv = await invocation(id);
    assert.equal(inv.state, 'done', `a 1.5 s module load with a 500 ms timeout: ${inv.last_error}`);
    assert.equal(inv.result, '{"n":7}');
  });

  test('callback-style handlers work', async () => {
    const id = await invokeFunction(db.pool, 'callback', { n: 21 });
    await eventually(async () => (await invocation(id)).state === 'done', 'the callback handler');
    assert.equal((await invocation(id)).result, '{"doubled":42}');
  });
});

describe('aws_lambda.invoke (the reference SQL surface)', () => {
  test("'Event' queues the function named by the ARN, status 202", async () => {
    const { rows } = await db.pool.query(
      `SELECT * FROM aws_lambda.invoke(aws_commons.create_lambda_function_arn('arn:aws:lambda:us-east-2:123456789100:function:publisher'), json_build_object('via', 'sql'), 'Event')`,
    );
    assert.deepEqual(rows[0], { status_code: 202, payload: null, executed_version: '$LATEST', log_result: null });
    await eventually(() => on('out').some((r) => r.json.body?.via === 'sql'), 'the SQL-invoked function to publish');
  });

  test('jsonb and text-name overloads, region and qualifier', async () => {
    const { rows } = await db.pool.query(
      `SELECT status_code FROM aws_lambda.invoke('publisher:prod', '{"via": "jsonb"}'::jsonb, 'us-east-1', 'Event', 'None', NULL, 'prod')`,
    );
    assert.equal(rows[0].status_code, 202);
    await eventually(
      () => on('out').some((r) => r.json.body?.via === 'jsonb'),
      'the jsonb-invoked function to publish',
    );
  });

  test("'DryRun' checks the function exists: 204, or a clear error", async () => {
    const ok = await db.pool.query(
      `SELECT status_code FROM aws_lambda.invoke('publisher', '{}'::json, invocation_type => 'DryRun')`,
    );
    assert.equal(ok.rows[0].status_code, 204);
    await assert.rejects(
      db.pool.query(`SELECT * FROM aws_lambda.invoke('nope', '{}'::json, invocation_type => 'DryRun')`),
      /function "nope" does not exist/,
    );
  });

  test("'RequestResponse' (the default) raises a clear error and queues nothing", async () => {
    const before = (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations`)).rows[0].n;
    await assert.rejects(
      db.pool.query(`SELECT * FROM aws_lambda.invoke('publisher', '{}'::json)`),
      (err: Error & { hint?: string }) => {
        assert.match(err.message, /RequestResponse' is not supported/);
        assert.match(err.hint ?? '', /'Event'/);
        return true;
      },
    );
    assert.equal((await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.invocations`)).rows[0].n, before);
  });

  test('bad arguments: unknown function, bad ARN, bad invocation or log type', async () => {
    await assert.rejects(
      db.pool.query(`SELECT * FROM aws_lambda.invoke('missing_fn', '{}'::json, invocation_type => 'Event')`),
      (err: Error & { hint?: string }) => {
        assert.match(err.message, /function "missing_fn" does not exist/);
        assert.match(err.hint ?? '', /known: .*publisher/);
        return true;
      },
    );
    await assert.rejects(
      db.pool.query(
        `SELECT * FROM aws_lambda.invoke('arn:aws:sns:us-east-1:1:topic', '{}'::json, invocation_type => 'Event')`,
      ),
      /is not a Lambda function ARN/,
    );
    await assert.rejects(
      db.pool.query(`SELECT * FROM aws_lambda.invoke('publisher', '{}'::json, invocation_type => 'Later')`),
      /invocation_type must be/,
    );
    await assert.rejects(
      db.pool.query(
        `SELECT * FROM aws_lambda.invoke('publisher', '{}'::json, invocation_type => 'Event', log_type => 'Verbose')`,
      ),
      /log_type must be/,
    );
    await assert.rejects(
      db.pool.query(`SELECT * FROM aws_lambda.invoke('', '{}'::json, invocation_type => 'Event')`),
      /needs a function name/,
    );
  });
});

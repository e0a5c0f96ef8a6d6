import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RowcastConfigInput, invokeFunction } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const fast = { minDelay: '50ms', maxDelay: '100ms' } as const;
const python = { runtime: 'python3.11', directory: 'test/fixtures/python' } as const;

let db: TestDatabase;
let receiver: WebhookReceiver;
let markers: string;

const config = (): RowcastConfigInput => ({
  topics: { failures: {} },
  functions: {
    echo: { ...python, handler: 'handlers.echo', concurrency: 1, environment: { GREETING: 'hello' } },
    fails: { ...python, handler: 'handlers.fails', maxAttempts: 2, ...fast, onFailure: { topic: 'failures' } },
    hangs: {
      ...python,
      handler: 'handlers.hangs_once',
      timeout: '1s',
      maxAttempts: 2,
      ...fast,
      environment: { MARKER_DIR: markers },
    },
    exits: {
      ...python,
      handler: 'handlers.exits_once',
      timeout: '10s',
      maxAttempts: 2,
      ...fast,
      environment: { MARKER_DIR: markers },
    },
    big: { ...python, handler: 'handlers.answers_big', concurrency: 1, maxAttempts: 1 },
    'init-error': { ...python, handler: 'init_error.handler', maxAttempts: 1, onFailure: { topic: 'failures' } },
    hog: {
      ...python,
      handler: 'handlers.hogs_memory',
      timeout: '30s',
      maxAttempts: 1,
      memoryLimitMb: 64,
      onFailure: { topic: 'failures' },
    },
    node: {
      runtime: 'provided.al2023',
      directory: 'test/fixtures/provided-node',
      handler: 'index.handler',
      timeout: '5s',
      maxAttempts: 1,
    },
    shell: {
      runtime: 'provided',
      directory: 'test/fixtures/provided',
      handler: 'echo.sh',
      concurrency: 1,
      maxAttempts: 1,
      onFailure: { topic: 'failures' },
    },
  },
  subscriptions: { failures: { topic: 'failures', protocol: 'http', endpoint: receiver.url } },
});

let close: () => Promise<void>;

before(async () => {
  markers = mkdtempSync(path.join(tmpdir(), 'rowcast-markers-'));
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    config: (started) => ((receiver = started.receiver), config()),
  }));
});

after(async () => {
  await close?.();
  rmSync(markers, { recursive: true, force: true });
});

const invocation = async (id: string) =>
  (await db.pool.query('SELECT * FROM rowcast.invocations WHERE id = $1', [id])).rows[0];
const finished = (id: string, state: 'done' | 'failed') =>
  eventually(
    async () => (await invocation(id))?.state === state && invocation(id),
    `invocation ${id} to be ${state}`,
    30_000,
  );
const failureRecord = (id: string) =>
  eventually(
    () => receiver.requests.find((r) => r.json.body?.requestContext?.requestId === id)?.json.body,
    `the failure record of ${id}`,
    30_000,
  );
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('python3 runtime', () => {
  test('a handler gets the event, Lambda’s context and environment, and its result is recorded', async () => {
    const id = await invokeFunction(db.pool, 'echo', { order: 1 });
    const inv = await finished(id, 'done');
    const result = JSON.parse(inv.result);
    assert.deepEqual(result.event, { order: 1 });
    assert.equal(result.context.aws_request_id, id);
    assert.equal(result.context.function_name, 'echo');
    assert.equal(result.context.function_version, '$LATEST');
    assert.equal(result.context.invoked_function_arn, 'arn:aws:lambda:us-east-1:000000000000:function:echo');
    assert.equal(result.context.memory_limit_in_mb, '256');
    assert.equal(result.context.log_group_name, '/aws/lambda/echo');
    assert.ok(
      result.context.remaining_ms >= 0 && result.context.remaining_ms <= 3000,
      'the deadline is within the 3 s timeout',
    );
    assert.equal(result.env.AWS_LAMBDA_FUNCTION_NAME, 'echo');
    assert.equal(result.env._HANDLER, 'handlers.echo');
    assert.equal(result.env.LAMBDA_TASK_ROOT, path.resolve('test/fixtures/python'));
    assert.equal(result.env.GREETING, 'hello');
    assert.match(result.env.AWS_LAMBDA_RUNTIME_API, /^127\.0\.0\.1:\d+$/);
    assert.equal(result.env.DATABASE_URL, null, "rowcast's own environment does not reach the function");
    assert.equal(result.env._ROWCAST_RUNTIME_FD, null, "the bootstrap's channel to rowcast is its own");
  });

  test('the process is reused: module-scope state survives between invocations', async () => {
    // Queued together, so that the function's one slot stays busy from the first to the second (an idle slot is given back, and its process stopped).
    const ids = [await invokeFunction(db.pool, 'echo', { n: 'a' }), await invokeFunction(db.pool, 'echo', { n: 'b' })];
    const [a, b] = await Promise.all(ids.map(async (id) => JSON.parse((await finished(id, 'done')).result)));
    assert.equal(b.pid, a.pid);
    assert.equal(Math.abs(b.invocations - a.invocations), 1);
  });

  test('an exception is retried, then Lambda’s error record reaches the on-failure topic', async () => {
    const id = await invokeFunction(db.pool, 'fails', { order: 42 });
    const record = await failureRecord(id);
    assert.equal(record.requestContext.condition, 'RetriesExhausted');
    assert.equal(record.requestContext.approximateInvokeCount, 2);
    assert.deepEqual(record.requestPayload, { order: 42 });
    assert.equal(record.responsePayload.errorType, 'ValueError');
    assert.equal(record.responsePayload.errorMessage, 'cannot handle order 42');
    assert.ok(
      record.responsePayload.stackTrace.some((line: string) => /handlers\.py.*in fails/.test(line)),
      'the Python traceback',
    );
    assert.match((await invocation(id)).last_error, /ValueError: cannot handle order 42/);
  });

  test('a response over 6 MB fails the attempt with Lambda’s error; the process runs the next invocation', async () => {
    // Queued together, so that the function's one slot (and its process) stays busy from the first to the second.
    const ids = [
      await invokeFunction(db.pool, 'big', { bytes: 7 * 1024 * 1024 }),
      await invokeFunction(db.pool, 'big', { bytes: 10 }),
    ];
    const [big, small] = [await finished(ids[0]!, 'failed'), await finished(ids[1]!, 'done')];
    assert.match(
      big.last_error,
      /Function\.ResponseSizeTooLarge: the response is over Lambda's limit of 6291456 bytes/,
    );
    assert.equal(JSON.parse(small.result).filler, 'x'.repeat(10));
  });

  test('a timeout kills the process; a new process runs the retry', async () => {
    const id = await invokeFunction(db.pool, 'hangs', { key: 'hang-1' });
    const inv = await finished(id, 'done');
    assert.equal(inv.attempts, 2);
    assert.match(inv.last_error, /TimeoutError: timed out after 1000 ms/);
    const hungPid = Number(readFileSync(path.join(markers, 'hang-1'), 'utf8'));
    assert.notEqual(JSON.parse(inv.result).pid, hungPid, 'the retry ran in another process');
    await eventually(() => !alive(hungPid), 'the timed-out process to be killed');
  });

  test('a crash (os._exit) fails the attempt; a new process runs the retry', async () => {
    const id = await invokeFunction(db.pool, 'exits', { key: 'exit-1' });
    const inv = await finished(id, 'done');
    assert.equal(inv.attempts, 2);
    assert.match(
      inv.last_error,
      /Runtime\.ExitError: the runtime process exited \(exit status 3\) during the invocation/,
    );
    assert.notEqual(JSON.parse(inv.result).pid, Number(readFileSync(path.join(markers, 'exit-1'), 'utf8')));
  });

  test('an init error (a module that cannot be imported) fails the invocation with Lambda’s error type', async () => {
    const id = await invokeFunction(db.pool, 'init-error', {});
    const record = await failureRecord(id);
    assert.equal(record.responsePayload.errorType, 'Runtime.ImportModuleError');
    assert.match(
      record.responsePayload.errorMessage,
      /Unable to import module 'init_error': No module named 'no_such_module_anywhere'/,
    );
  });

  test('a process over its memory limit is killed and the attempt fails', async () => {
    const id = await invokeFunction(db.pool, 'hog', {});
    const record = await failureRecord(id);
    assert.equal(record.responsePayload.errorType, 'Runtime.OutOfMemory');
    assert.match(record.responsePayload.errorMessage, /memoryLimitMb \(64 MB\)/);
  });
});

describe('provided runtime', () => {
  test('a shell bootstrap speaking the Runtime API with curl runs invocations, reused', async () => {
    const ids = [await invokeFunction(db.pool, 'shell', { n: 1 }), await invokeFunction(db.pool, 'shell', { n: 2 })];
    const [first, second] = await Promise.all(ids.map(async (id) => JSON.parse((await finished(id, 'done')).result)));
    assert.deepEqual(first.echo, { n: 1 });
    assert.deepEqual(second.echo, { n: 2 });
    assert.equal(first.handler, 'echo.sh');
    assert.equal(second.shell, first.shell, 'the same process');
  });

  test('the event is the payload byte for byte, as Lambda passes it; text that is not JSON comes as a JSON string', async () => {
    // Parsed and written again, the integer would reach the runtime as 9007199254740992, and 1.50 as 1.5.
    const payload = '{"id": 9007199254740993, "price": 1.50, "b": 1, "a": 2}';
    const invoke = async (text: string) =>
      (await db.pool.query<{ id: string }>(`SELECT rowcast.invoke('shell', $1) AS id`, [text])).rows[0]!.id;
    const json = await invoke(payload);
    const result: string = (await finished(json, 'done')).result;
    assert.ok(result.startsWith(`{"echo":${payload},`), `the runtime got the payload as written: ${result}`);
    const text = await invoke('plain words');
    assert.equal(JSON.parse((await finished(text, 'done')).result).echo, 'plain words');
  });

  test('an error it posts reaches the on-failure topic in Lambda’s shape', async () => {
    const id = await invokeFunction(db.pool, 'shell', 'fail');
    const record = await failureRecord(id);
    assert.equal(record.responsePayload.errorType, 'ShellError');
    assert.equal(record.responsePayload.errorMessage, 'asked to fail');
  });

  test('a Node script bootstrap gets Lambda’s headers: request id, deadline, ARN, X-Ray trace (from the writer’s traceparent), client context', async () => {
    const client = await db.pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL rowcast.traceparent = '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01'`);
      id = (await client.query(`SELECT rowcast.invoke('node', '{"n": 3}', 'sql', '{"custom": {"app": "test"}}') AS id`))
        .rows[0].id;
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const answer = JSON.parse((await finished(id, 'done')).result);
    assert.deepEqual(answer.event, { n: 3 });
    assert.equal(answer.eventLength, String('{"n": 3}'.length), 'the event comes whole with its length, not chunked');
    assert.equal(answer.eventEncoding, null);
    assert.equal(answer.handler, 'index.handler');
    assert.equal(answer.stray, 400, 'a response for an id that is not the current invocation is refused');
    assert.equal(answer.functionName, 'node');
    assert.equal(answer.arn, 'arn:aws:lambda:us-east-1:000000000000:function:node');
    assert.equal(answer.trace, 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1');
    assert.deepEqual(JSON.parse(answer.clientContext), { custom: { app: 'test' } });
    assert.ok(
      Number.isFinite(answer.remainingMs) && answer.remainingMs <= 5000,
      `the deadline is within the 5 s timeout: ${answer.remainingMs} ms left`,
    );
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  InvokeCommand,
  LambdaClient,
  ResourceNotFoundException,
  TooManyRequestsException,
} from '@aws-sdk/client-lambda';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime, startRowcast } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const python = { runtime: 'python3', directory: 'test/fixtures/python' } as const;

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let lambda: LambdaClient;
const KEY = { accessKeyId: 'AKIDROWCASTLAMBDATEST', secretAccessKey: 'rowcast-lambda-test-secret-key' };
const client = (credentials = KEY) =>
  new LambdaClient({ endpoint: rowcast.httpUrl!, region: 'us-east-1', credentials, maxAttempts: 1 });

const config = (): RowcastConfigInput => ({
  topics: { failures: {} },
  functions: {
    echo: { ...python, handler: 'handlers.echo' },
    // Three attempts and an on-failure topic when invoked asynchronously; a synchronous caller gets the first error.
    fails: {
      ...python,
      handler: 'handlers.fails',
      maxAttempts: 3,
      minDelay: '50ms',
      maxDelay: '100ms',
      onFailure: { topic: 'failures' },
    },
    node: { handler: 'test/fixtures/handlers/publisher.ts', environment: { ENV_TOPIC_ARN: 'failures' } },
    held: { ...python, handler: 'handlers.echo', concurrency: 0 },
  },
  subscriptions: { failures: { topic: 'failures', protocol: 'http', endpoint: receiver.url } },
});

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  await applyConfig(db.pool, config());
  rowcast = await startRowcast({
    databaseUrl: db.url,
    runtime: { ...FAST_RUNTIME, http: { port: 0, host: '127.0.0.1' } },
    functions: parseConfig(config(), 'test config').functions,
    aws: { credentials: { [KEY.accessKeyId]: KEY.secretAccessKey } },
    logger: createLogger('silent'),
  });
  lambda = client();
});

after(async () => {
  lambda?.destroy();
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

const json = (bytes: Uint8Array | undefined) => JSON.parse(Buffer.from(bytes ?? []).toString('utf8'));
const invocations = async (fn: string) =>
  (await db.pool.query('SELECT * FROM rowcast.invocations WHERE function = $1 ORDER BY created_at', [fn])).rows;

describe('Lambda Invoke API through @aws-sdk/client-lambda', () => {
  test('RequestResponse runs the function now and answers with its result, version and log tail', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: 'echo', Payload: JSON.stringify({ order: 7 }), LogType: 'Tail' }),
    );
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, undefined);
    assert.equal(out.ExecutedVersion, '$LATEST');
    const result = json(out.Payload);
    assert.deepEqual(result.event, { order: 7 });
    assert.equal(result.context.function_name, 'echo');
    const [inv] = await invocations('echo');
    assert.equal(inv.source, 'request-response');
    assert.equal(result.context.aws_request_id, inv.id);
    assert.match(
      Buffer.from(out.LogResult!, 'base64').toString('utf8'),
      new RegExp(
        `^START RequestId: ${inv.id} Version: \\$LATEST\\nEND RequestId: ${inv.id}\\nREPORT RequestId: ${inv.id}`,
      ),
    );
  });

  test('by ARN, partial ARN and name:qualifier, and for a Node function', async () => {
    for (const FunctionName of [
      'arn:aws:lambda:us-east-1:000000000000:function:echo',
      '000000000000:function:echo',
      'echo:$LATEST',
    ]) {
      const out = await lambda.send(
        new InvokeCommand({ FunctionName, Payload: JSON.stringify({ via: FunctionName }) }),
      );
      assert.deepEqual(json(out.Payload).event, { via: FunctionName });
    }
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'node', Payload: JSON.stringify({ n: 1 }) }));
    assert.match(json(out.Payload).body, /Notification sent:/);
  });

  test('RequestResponse of a failing function answers its error once: FunctionError, Lambda’s error payload, no on-failure record', async () => {
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'fails', Payload: JSON.stringify({ order: 9 }) }));
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, 'Unhandled');
    const error = json(out.Payload);
    assert.equal(error.errorType, 'ValueError');
    assert.equal(error.errorMessage, 'cannot handle order 9');
    assert.ok(error.stackTrace.length > 0);
    const [inv] = await invocations('fails');
    assert.equal(inv.state, 'failed');
    assert.equal(inv.attempts, 1, 'not retried');
    // The on-failure record would have been written with the failure, in the same transaction.
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM rowcast.messages WHERE topic = 'failures' AND strpos(body, $1) > 0`,
      [inv.id],
    );
    assert.equal(rows[0].n, 0, 'no on-failure record');
  });

  test('Event queues the invocation durably and answers 202; it runs with retries and its on-failure record', async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: 'fails', InvocationType: 'Event', Payload: JSON.stringify({ order: 10 }) }),
    );
    assert.equal(out.StatusCode, 202);
    const inv = (await invocations('fails')).find((i) => JSON.parse(i.payload).order === 10);
    assert.ok(inv, 'queued before the answer');
    assert.equal(inv.source, 'api');
    const record = await eventually(
      () => receiver.requests.find((r) => r.json.body?.requestContext?.requestId === inv.id)?.json.body,
      'the on-failure record',
      30_000,
    );
    assert.equal(record.requestContext.approximateInvokeCount, 3);
  });

  test('DryRun answers 204 and runs nothing; an unknown function is ResourceNotFoundException', async () => {
    const before = (await invocations('echo')).length;
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'echo', InvocationType: 'DryRun' }));
    assert.equal(out.StatusCode, 204);
    assert.equal((await invocations('echo')).length, before);
    for (const InvocationType of ['DryRun', 'Event', 'RequestResponse'] as const) {
      await assert.rejects(
        lambda.send(new InvokeCommand({ FunctionName: 'nope', InvocationType, Payload: '{}' })),
        (err: Error) => {
          assert.ok(err instanceof ResourceNotFoundException, `${InvocationType}: ${err.name}`);
          assert.match(err.message, /Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope/);
          return true;
        },
      );
    }
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'echo', Qualifier: '7' })),
      (err: Error) => err instanceof ResourceNotFoundException,
    );
  });

  test('a payload that is not JSON is InvalidRequestContentException', async () => {
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from('not json') })),
      (err: Error) => {
        assert.equal(err.name, 'InvalidRequestContentException');
        assert.match(err.message, /Could not parse request body into json/);
        return true;
      },
    );
  });

  test('RequestResponse of a function with concurrency 0 is throttled (nothing queued); Event still queues', async () => {
    await assert.rejects(lambda.send(new InvokeCommand({ FunctionName: 'held', Payload: '{}' })), (err: Error) => {
      assert.ok(err instanceof TooManyRequestsException, err.name);
      assert.equal(err.Reason, 'ReservedFunctionConcurrentInvocationLimitExceeded');
      assert.match(
        err.message,
        /function held is paused or has concurrency 0; resume it, or invoke with InvocationType Event/,
      );
      return true;
    });
    assert.equal((await invocations('held')).length, 0);
    assert.equal(
      (await lambda.send(new InvokeCommand({ FunctionName: 'held', InvocationType: 'Event', Payload: '{}' })))
        .StatusCode,
      202,
    );
    assert.equal((await invocations('held')).length, 1);
  });
});

describe('Lambda Invoke API authentication (SigV4, as the SNS API)', () => {
  test('a request signed with a wrong secret or an unknown key is refused, and runs nothing', async () => {
    const before = (await invocations('echo')).length;
    const cases = [
      [
        { ...KEY, secretAccessKey: 'not-the-secret-of-this-key' },
        'InvalidSignatureException',
        /signature we calculated does not match/,
      ],
      [
        { accessKeyId: 'AKIDNOTINTHECONFIG00', secretAccessKey: KEY.secretAccessKey },
        'UnrecognizedClientException',
        /not in aws\.credentials/,
      ],
    ] as const;
    for (const [credentials, name, message] of cases) {
      const wrong = client(credentials);
      for (const InvocationType of ['RequestResponse', 'Event', 'DryRun'] as const) {
        await assert.rejects(
          wrong.send(new InvokeCommand({ FunctionName: 'echo', InvocationType, Payload: '{}' })),
          (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
            assert.equal(err.name, name, `${InvocationType}: ${err.message}`);
            assert.equal(err.$metadata?.httpStatusCode, 403);
            assert.match(err.message, message);
            return true;
          },
        );
      }
      wrong.destroy();
    }
    assert.equal((await invocations('echo')).length, before, 'nothing was queued');
  });

  test('an unsigned request is refused with MissingAuthenticationTokenException', async () => {
    const res = await fetch(`${rowcast.httpUrl}/2015-03-31/functions/echo/invocations`, {
      method: 'POST',
      headers: { 'x-amz-invocation-type': 'Event' },
      body: '{}',
    });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
    assert.match(((await res.json()) as { message: string }).message, /Signature V4/);
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  ConfirmSubscriptionCommand,
  CreateTopicCommand,
  DeleteTopicCommand,
  GetSubscriptionAttributesCommand,
  GetTopicAttributesCommand,
  ListSubscriptionsByTopicCommand,
  type ListSubscriptionsByTopicCommandOutput,
  ListSubscriptionsCommand,
  type ListSubscriptionsCommandOutput,
  ListTopicsCommand,
  type ListTopicsCommandOutput,
  PublishBatchCommand,
  PublishCommand,
  SetSubscriptionAttributesCommand,
  SetTopicAttributesCommand,
  SNSClient,
  SNSServiceException,
  SubscribeCommand,
  UnsubscribeCommand,
} from '@aws-sdk/client-sns';
import { fetch } from 'undici';
import { QueryParams } from '../../src/sns/query-protocol.js';
import { snsApiRoutes } from '../../src/app/http/sns-api-routes.js';
import { SnsOperations } from '../../src/sns/sns-operations.js';
import {
  apply,
  ErrorCodes,
  getDelivery,
  redriveDelivery,
  getStatus,
  redrive,
  resendDelivery,
  parseConfig,
  pauseSubscription,
  resumeSubscription,
  type RowcastConfigInput,
  type RowcastRuntime,
  startRowcast,
} from '../../src/index.js';
import { formatStatus } from '../../src/app/cli/format-status.js';
import { awsSchema } from '../../src/config/aws-schema.js';
import { adminApiRoutes } from '../../src/app/http/admin-api/admin-api-routes.js';
import { snsEnvelopeRoutes } from '../../src/app/http/sns-envelope-routes.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { freePort } from '../../src/store/embedded-postgres.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { httpsGet, TlsProxy, validateSnsMessage } from '../support/sns-tls.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

const KEY = { accessKeyId: 'AKIDROWCASTTEST0001', secretAccessKey: 'rowcast-test-secret-access-key-0001' };
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const arn = (topic: string) => `arn:aws:sns:${REGION}:${ACCOUNT}:${topic}`;

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let sns: SNSClient;
// SNS envelopes name rowcast's URLs (certificate, SubscribeURL): served over TLS, as sns-validator requires.
let proxy: TlsProxy;

const config = (): RowcastConfigInput => ({
  topics: { 'config-topic': {} },
  // Declared only (this process runs no handlers): a lambda subscription's messages queue invocations of it.
  functions: { 'sns-target': { handler: 'test/fixtures/handlers/trace-echo.ts' } },
  subscriptions: { 'config-hook': { topic: 'config-topic', protocol: 'http', endpoint: receiver.url } },
  aws: { region: REGION, accountId: ACCOUNT },
});

/** The SNS error an SDK call fails with (its code and HTTP status). */
async function snsError(
  call: Promise<unknown>,
): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await call;
  } catch (err) {
    if (!(err instanceof SNSServiceException))
      assert.fail(
        `not an SNS error: ${String(err)} ${(err as any).$response?.statusCode} ${(err as any).$responseBodyText}`,
      );
    return { name: err.name, status: err.$metadata.httpStatusCode, message: err.message };
  }
  assert.fail('the call succeeded');
}

/** The receiver's path for an endpoint `${receiver.url}/<name>`. */
const pathOf = (name: string) => `${new URL(receiver.url).pathname}/${name}`;
const snsMessages = (name: string, type: string) =>
  receiver.requests.filter((r) => r.path === pathOf(name) && r.headers['x-amz-sns-message-type'] === type);

/** The nth SubscriptionConfirmation (1-based) the endpoint `${receiver.url}/<name>` received, verified by sns-validator. */
async function confirmationOf(name: string, nth = 1): Promise<Record<string, string>> {
  const request = await eventually(
    () => snsMessages(name, 'SubscriptionConfirmation')[nth - 1],
    `SubscriptionConfirmation ${nth} at /${name}`,
  );
  assert.equal(request.headers['user-agent'], 'Amazon Simple Notification Service Agent');
  const message = await validateSnsMessage(request.body);
  assert.equal(message.Type, 'SubscriptionConfirmation');
  return message;
}

/** The Notification of a message at `${receiver.url}/<name>` (found by x-amz-sns-message-id). */
const notificationOf = (name: string, messageId: string | undefined): Promise<ReceivedRequest> =>
  eventually(
    () => snsMessages(name, 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === messageId),
    `the notification of ${messageId} at /${name}`,
  );

/** The delivery of a published message to an API subscription (its ARN), as the admin API reads it. */
async function deliveryOf(subscriptionArn: string | undefined, messageId: string | undefined) {
  const { rows } = await db.pool.query('SELECT seq::text FROM rowcast.messages WHERE id = $1', [messageId]);
  return getDelivery(db.pool, `${subscriptionArn!.split(':').at(-1)}@${rows[0].seq}`);
}

/** Confirms an http subscription as its endpoint would: a GET of its SubscriptionConfirmation's SubscribeURL. */
async function confirmThroughUrl(name: string): Promise<void> {
  const visited = await httpsGet((await confirmationOf(name)).SubscribeURL!);
  assert.equal(visited.status, 200, visited.body);
}

const client = (credentials = KEY) =>
  new SNSClient({ endpoint: rowcast.httpUrl, region: REGION, credentials, maxAttempts: 1 });

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  proxy = await TlsProxy.start();
  await applyConfig(db.pool, config());
  rowcast = await startRowcast({
    databaseUrl: db.url,
    // Polling only once a minute: a published message reaches its webhook because the Publish wakes the delivery workers.
    runtime: { ...FAST_RUNTIME, pollInterval: 60_000, http: { port: 0, host: '127.0.0.1', publicUrl: proxy.url } },
    aws: { region: REGION, accountId: ACCOUNT, credentials: { [KEY.accessKeyId]: KEY.secretAccessKey } },
    // Pages of two, so that pagination is exercised with a handful of topics.
    httpRoutes: [snsApiRoutes({ pageSize: 2 }), adminApiRoutes(), snsEnvelopeRoutes()],
    logger: createLogger('silent'),
  });
  proxy.upstream = rowcast.httpUrl!;
  sns = client();
});

after(async () => {
  sns?.destroy();
  await rowcast?.stop();
  await proxy?.close();
  await receiver?.close();
  await db?.drop();
});

describe('topics', () => {
  test('CreateTopic is idempotent, refuses other attributes, and its attributes round-trip', async () => {
    const made = await sns.send(new CreateTopicCommand({ Name: 'api-orders', Attributes: { DisplayName: 'Orders' } }));
    assert.equal(made.TopicArn, arn('api-orders'));
    assert.equal(
      (await sns.send(new CreateTopicCommand({ Name: 'api-orders', Attributes: { DisplayName: 'Orders' } }))).TopicArn,
      arn('api-orders'),
    );
    const other = await snsError(
      sns.send(new CreateTopicCommand({ Name: 'api-orders', Attributes: { DisplayName: 'Other' } })),
    );
    assert.deepEqual([other.name, other.status], ['InvalidParameterException', 400]);
    assert.match(other.message, /different attributes/);

    await sns.send(
      new SetTopicAttributesCommand({
        TopicArn: made.TopicArn,
        AttributeName: 'DisplayName',
        AttributeValue: 'All orders',
      }),
    );
    await sns.send(
      new SetTopicAttributesCommand({
        TopicArn: made.TopicArn,
        AttributeName: 'SignatureVersion',
        AttributeValue: '2',
      }),
    );
    const { Attributes } = await sns.send(new GetTopicAttributesCommand({ TopicArn: made.TopicArn }));
    assert.equal(Attributes?.TopicArn, arn('api-orders'));
    assert.equal(Attributes?.Owner, ACCOUNT);
    assert.equal(Attributes?.DisplayName, 'All orders');
    assert.equal(Attributes?.SignatureVersion, '2');
    assert.equal(Attributes?.FifoTopic, undefined);
    assert.ok(JSON.parse(Attributes!.Policy!).Statement, 'a default policy');

    const bad = await snsError(
      sns.send(
        new SetTopicAttributesCommand({
          TopicArn: made.TopicArn,
          AttributeName: 'SignatureVersion',
          AttributeValue: '3',
        }),
      ),
    );
    assert.deepEqual([bad.name, bad.status], ['InvalidParameterException', 400]);
    const unknown = await snsError(
      sns.send(
        new SetTopicAttributesCommand({ TopicArn: made.TopicArn, AttributeName: 'Colour', AttributeValue: 'red' }),
      ),
    );
    assert.match(unknown.message, /Colour is not a topic attribute/);
  });

  test('bad names are InvalidParameter; an unknown topic is NotFound (404)', async () => {
    for (const Name of ['has space', 'x'.repeat(257), 'plain.fifo']) {
      const err = await snsError(sns.send(new CreateTopicCommand({ Name })));
      assert.deepEqual([err.name, err.status], ['InvalidParameterException', 400], Name);
    }
    const err = await snsError(
      sns.send(new CreateTopicCommand({ Name: 'no-suffix', Attributes: { FifoTopic: 'true' } })),
    );
    assert.match(err.message, /must end with \.fifo/);
    const missing = await snsError(sns.send(new GetTopicAttributesCommand({ TopicArn: arn('never-made') })));
    assert.deepEqual([missing.name, missing.status], ['NotFoundException', 404]);
    const notArn = await snsError(sns.send(new PublishCommand({ TopicArn: 'orders', Message: 'x' })));
    assert.deepEqual([notArn.name, notArn.status], ['InvalidParameterException', 400]);
  });

  test("ListTopics pages with NextToken through every topic, the config's included", async () => {
    for (const n of [1, 2, 3]) await sns.send(new CreateTopicCommand({ Name: `page-${n}` }));
    const seen: string[] = [];
    let NextToken: string | undefined;
    let pages = 0;
    do {
      const page: ListTopicsCommandOutput = await sns.send(new ListTopicsCommand({ NextToken }));
      assert.ok((page.Topics ?? []).length <= 2);
      seen.push(...(page.Topics ?? []).map((t) => t.TopicArn!));
      NextToken = page.NextToken;
      pages++;
    } while (NextToken);
    assert.ok(pages >= 3, `${pages} pages`);
    for (const name of ['config-topic', 'page-1', 'page-2', 'page-3']) assert.ok(seen.includes(arn(name)), name);
    assert.equal(new Set(seen).size, seen.length, 'no topic twice');
    const bad = await snsError(sns.send(new ListTopicsCommand({ NextToken: 'not-a-token!' })));
    assert.equal(bad.name, 'InvalidParameterException');
  });

  test('DeleteTopic removes an API topic (and again succeeds); a config topic is refused', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'short-lived' }));
    await sns.send(new DeleteTopicCommand({ TopicArn }));
    await sns.send(new DeleteTopicCommand({ TopicArn }));
    assert.equal((await db.pool.query(`SELECT 1 FROM rowcast.topics WHERE name = 'short-lived'`)).rowCount, 0);
    const refused = await snsError(sns.send(new DeleteTopicCommand({ TopicArn: arn('config-topic') })));
    assert.deepEqual([refused.name, refused.status], ['AuthorizationErrorException', 403]);
    assert.match(refused.message, /declared in rowcast's config/);
  });
});

describe('subscriptions and publishing', () => {
  test('Subscribe (http): pending until confirmed with its token, then SNS envelopes, filtered, with typed attributes', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'api-events' }));
    const Attributes = { FilterPolicy: JSON.stringify({ kind: ['order'] }) };
    // SNS answers "pending confirmation" until the endpoint confirms; ReturnSubscriptionArn asks for the ARN.
    const pending = await sns.send(
      new SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: `${receiver.url}/events`, Attributes }),
    );
    assert.equal(pending.SubscriptionArn, 'pending confirmation');
    // Each Subscribe of a pending subscription sends a new SubscriptionConfirmation, whose token replaces the last.
    const first = await confirmationOf('events', 1);
    const { SubscriptionArn } = await sns.send(
      new SubscribeCommand({
        TopicArn,
        Protocol: 'http',
        Endpoint: `${receiver.url}/events`,
        Attributes,
        ReturnSubscriptionArn: true,
      }),
    );
    assert.match(SubscriptionArn!, new RegExp(`^${arn('api-events')}:[0-9a-f-]{36}$`));
    await confirmationOf('events', 2);
    // The same endpoint with the same attributes (a filter policy written otherwise) is the same subscription; with others, refused.
    const same = await sns.send(
      new SubscribeCommand({
        TopicArn,
        Protocol: 'http',
        Endpoint: `${receiver.url}/events`,
        Attributes: { FilterPolicy: '{ "kind": [ "order" ] }' },
        ReturnSubscriptionArn: true,
      }),
    );
    assert.equal(same.SubscriptionArn, SubscriptionArn);
    const latest = await confirmationOf('events', 3);
    const other = await snsError(
      sns.send(
        new SubscribeCommand({
          TopicArn,
          Protocol: 'http',
          Endpoint: `${receiver.url}/events`,
          Attributes: { RawMessageDelivery: 'true' },
        }),
      ),
    );
    assert.deepEqual(
      [other.name, other.status, other.message],
      [
        'InvalidParameterException',
        400,
        'Invalid parameter: Attributes Reason: Subscription already exists with different attributes',
      ],
    );

    const attrs = (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn }))).Attributes!;
    assert.equal(attrs.TopicArn, TopicArn);
    assert.equal(attrs.Owner, ACCOUNT);
    assert.equal(attrs.Protocol, 'http');
    assert.equal(attrs.Endpoint, `${receiver.url}/events`);
    assert.deepEqual(JSON.parse(attrs.FilterPolicy!), { kind: ['order'] });
    assert.equal(attrs.RawMessageDelivery, 'false');
    assert.equal(attrs.PendingConfirmation, 'true');
    assert.equal(attrs.ConfirmationWasAuthenticated, 'false');
    assert.equal(attrs.SubscriptionRoleArn, undefined);
    const topicAttrs = (await sns.send(new GetTopicAttributesCommand({ TopicArn }))).Attributes!;
    assert.deepEqual([topicAttrs.SubscriptionsPending, topicAttrs.SubscriptionsConfirmed], ['1', '0']);
    assert.deepEqual(
      (await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.map((x) => x.SubscriptionArn),
      ['PendingConfirmation'],
    );

    // Nothing reaches a pending subscription, then or later (as SNS).
    const early = await sns.send(
      new PublishCommand({
        TopicArn,
        Message: 'before confirmation',
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'order' } },
      }),
    );
    await assert.rejects(deliveryOf(SubscriptionArn, early.MessageId), {
      code: ErrorCodes.NOT_FOUND,
      message: /is waiting for its SNS confirmation: it gets no messages/,
    });

    assert.match(latest.Token!, /^[0-9a-f]{128}$/);
    assert.equal(latest.TopicArn, TopicArn);
    const replaced = await snsError(sns.send(new ConfirmSubscriptionCommand({ TopicArn, Token: first.Token! })));
    assert.deepEqual([replaced.name, replaced.message], ['InvalidParameterException', 'Invalid token']);
    const confirmed = await sns.send(
      new ConfirmSubscriptionCommand({ TopicArn, Token: latest.Token!, AuthenticateOnUnsubscribe: 'true' }),
    );
    assert.equal(confirmed.SubscriptionArn, SubscriptionArn);
    const now = (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn }))).Attributes!;
    assert.deepEqual([now.PendingConfirmation, now.ConfirmationWasAuthenticated], ['false', 'true']);
    assert.equal(
      (await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn,
      SubscriptionArn,
    );

    const skipped = await sns.send(
      new PublishCommand({
        TopicArn,
        Message: 'not for you',
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'refund' } },
      }),
    );
    const sent = await sns.send(
      new PublishCommand({
        TopicArn,
        Subject: 'Order placed',
        Message: JSON.stringify({ order: 7 }),
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: 'order' },
          total: { DataType: 'Number', StringValue: '12.5' },
          tags: { DataType: 'String.Array', StringValue: '["a","b"]' },
          blob: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]) },
        },
      }),
    );
    // Durable before the answer: the message and its delivery are committed when Publish returns.
    const { rows } = await db.pool.query(`SELECT attributes, attribute_types FROM rowcast.messages WHERE id = $1`, [
      sent.MessageId,
    ]);
    const delivery = await deliveryOf(SubscriptionArn, sent.MessageId);
    assert.equal(delivery.messageId, sent.MessageId);
    assert.ok(['pending', 'in_flight', 'done'].includes(delivery.state), delivery.state);
    assert.deepEqual(rows[0].attributes, { kind: 'order', total: '12.5', tags: ['a', 'b'], blob: 'AQID' });
    assert.deepEqual(rows[0].attribute_types, {
      kind: 'String',
      total: 'Number',
      tags: 'String.Array',
      blob: 'Binary',
    });
    // The filter policy says no to the other message (through the cursor, at delivery; the receiver's side below).
    await assert.rejects(deliveryOf(SubscriptionArn, skipped.MessageId), {
      code: ErrorCodes.NOT_FOUND,
      message: /filter policy does not match the message/,
    });

    // SNS's signed envelope, verified as SNS subscribers verify it; attributes with the types they were published with.
    const got = await notificationOf('events', sent.MessageId);
    assert.equal(got.headers['x-amz-sns-subscription-arn'], SubscriptionArn);
    assert.equal(got.headers['x-amz-sns-topic-arn'], TopicArn);
    const message = await validateSnsMessage(got.body);
    assert.equal(message.Subject, 'Order placed');
    assert.equal(message.Message, JSON.stringify({ order: 7 }));
    assert.deepEqual(got.json.MessageAttributes, {
      kind: { Type: 'String', Value: 'order' },
      total: { Type: 'Number', Value: '12.5' },
      tags: { Type: 'String.Array', Value: '["a","b"]' },
      blob: { Type: 'Binary', Value: 'AQID' },
    });
    // Later, too: the message published while pending was passed unsent, and neither it nor the filtered one came.
    await assert.rejects(deliveryOf(SubscriptionArn, early.MessageId), {
      code: ErrorCodes.NOT_FOUND,
      message:
        /was waiting for its SNS confirmation \(or unsubscribed\) when the message was published, so it was not sent/,
    });
    await eventually(
      async () => (await deliveryOf(SubscriptionArn, sent.MessageId)).state === 'done',
      'the delivery of the sent message done',
    );
    const notified = snsMessages('events', 'Notification').map((r) => r.headers['x-amz-sns-message-id']);
    assert.ok(!notified.includes(early.MessageId) && !notified.includes(skipped.MessageId), notified.join(', '));
    // Confirmed with AuthenticateOnUnsubscribe=true: the unsigned UnsubscribeURL is refused.
    const unsubscribeLink = await httpsGet(message.UnsubscribeURL!);
    assert.equal(unsubscribeLink.status, 403);
    assert.match(unsubscribeLink.body, /AuthenticateOnUnsubscribe/);

    // RawMessageDelivery: the message alone, marked x-amz-sns-rawdelivery.
    await sns.send(
      new SetSubscriptionAttributesCommand({
        SubscriptionArn,
        AttributeName: 'RawMessageDelivery',
        AttributeValue: 'true',
      }),
    );
    await sns.send(
      new SetSubscriptionAttributesCommand({ SubscriptionArn, AttributeName: 'FilterPolicy', AttributeValue: '' }),
    );
    const after = (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn }))).Attributes!;
    assert.equal(after.RawMessageDelivery, 'true');
    assert.equal(after.FilterPolicy, undefined);
    assert.equal(after.PendingConfirmation, 'false', 'changing attributes keeps the confirmation');
    const raw = await sns.send(new PublishCommand({ TopicArn, Message: 'plain text, raw' }));
    const rawGot = await notificationOf('events', raw.MessageId);
    assert.equal(rawGot.body, 'plain text, raw');
    assert.equal(rawGot.headers['x-amz-sns-rawdelivery'], 'true');

    const badPolicy = await snsError(
      sns.send(
        new SetSubscriptionAttributesCommand({
          SubscriptionArn,
          AttributeName: 'FilterPolicy',
          AttributeValue: '{"kind": "order"}',
        }),
      ),
    );
    assert.equal(badPolicy.name, 'InvalidParameterException');
    assert.match(badPolicy.message, /FilterPolicy/);
  });

  test('MessageStructure json: the http subscriber gets the "http" message, others the default', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'api-structured' }));
    await sns.send(
      new SubscribeCommand({
        TopicArn,
        Protocol: 'http',
        Endpoint: `${receiver.url}/structured`,
        Attributes: { RawMessageDelivery: 'true' },
      }),
    );
    await confirmThroughUrl('structured');
    const sent = await sns.send(
      new PublishCommand({
        TopicArn,
        MessageStructure: 'json',
        Message: JSON.stringify({ default: 'for everyone', http: 'for http', email: 'for mail' }),
      }),
    );
    const got = await notificationOf('structured', sent.MessageId);
    assert.equal(got.body, 'for http');
    const { rows } = await db.pool.query('SELECT body FROM rowcast.messages WHERE id = $1', [sent.MessageId]);
    assert.equal(rows[0].body, 'for everyone');

    for (const Message of ['not json', JSON.stringify({ http: 'no default' }), JSON.stringify({ default: 1 })]) {
      const err = await snsError(sns.send(new PublishCommand({ TopicArn, MessageStructure: 'json', Message })));
      assert.deepEqual([err.name, err.status], ['InvalidParameterException', 400], Message);
      assert.match(err.message, /Message Structure/);
    }
  });

  test('ListSubscriptions and ListSubscriptionsByTopic page with NextToken; Unsubscribe; ConfirmSubscription; tokens expire', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'api-many' }));
    const arns: string[] = [];
    for (const n of [1, 2, 3])
      arns.push(
        (
          await sns.send(
            new SubscribeCommand({
              TopicArn,
              Protocol: 'http',
              Endpoint: `${receiver.url}/many-${n}`,
              ReturnSubscriptionArn: true,
            }),
          )
        ).SubscriptionArn!,
      );
    for (const n of [1, 2, 3]) {
      const { Token, SubscribeURL } = await confirmationOf(`many-${n}`);
      // AuthenticateOnUnsubscribe needs a signed ConfirmSubscription: the unsigned SubscribeURL refuses it.
      if (n === 1) assert.equal((await httpsGet(`${SubscribeURL}&AuthenticateOnUnsubscribe=true`)).status, 403);
      // Tokens expire after 3 days, as SNS's: the third one's handshake is made older than that.
      if (n === 3)
        await db.pool.query(
          `UPDATE rowcast.subscriptions SET sns_state_changed_at = now() - interval '3 days 1 minute' WHERE name = $1`,
          [arns[2]!.split(':').at(-1)],
        );
      const confirm = sns.send(new ConfirmSubscriptionCommand({ TopicArn, Token }));
      if (n < 3) assert.equal((await confirm).SubscriptionArn, arns[n - 1]);
      else {
        assert.match(
          (await snsError(confirm)).message,
          /^Invalid token: it expired \(confirmation tokens are valid for 3 days\)/,
        );
        const visited = await httpsGet(SubscribeURL!);
        assert.equal(visited.status, 400);
        assert.match(visited.body, /it expired/);
      }
    }
    assert.equal(
      (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: arns[2] }))).Attributes
        ?.PendingConfirmation,
      'true',
    );
    // As SNS lists it: a pending subscription has no ARN yet.
    const listed = (arn: string) => (arn === arns[2] ? 'PendingConfirmation' : arn);

    const byTopic: string[] = [];
    let NextToken: string | undefined;
    do {
      const page: ListSubscriptionsByTopicCommandOutput = await sns.send(
        new ListSubscriptionsByTopicCommand({ TopicArn, NextToken }),
      );
      for (const s of page.Subscriptions ?? []) {
        assert.equal(s.TopicArn, TopicArn);
        assert.equal(s.Owner, ACCOUNT);
        assert.equal(s.Protocol, 'http');
        byTopic.push(s.SubscriptionArn!);
      }
      NextToken = page.NextToken;
    } while (NextToken);
    assert.deepEqual(byTopic.sort(), arns.map(listed).sort());

    const all: { SubscriptionArn?: string; Endpoint?: string; Protocol?: string }[] = [];
    NextToken = undefined;
    do {
      const page: ListSubscriptionsCommandOutput = await sns.send(new ListSubscriptionsCommand({ NextToken }));
      all.push(...(page.Subscriptions ?? []));
      NextToken = page.NextToken;
    } while (NextToken);
    for (const a of arns.slice(0, 2))
      assert.ok(
        all.some((s) => s.SubscriptionArn === a),
        a,
      );
    assert.ok(all.some((s) => s.SubscriptionArn === 'PendingConfirmation' && s.Endpoint === `${receiver.url}/many-3`));
    const configHook = all.find((s) => s.SubscriptionArn === `${arn('config-topic')}:config-hook`);
    assert.equal(configHook?.Endpoint, receiver.url, 'config subscriptions are listed too');

    // The subscription's id is not its token.
    const badToken = await snsError(
      sns.send(new ConfirmSubscriptionCommand({ TopicArn, Token: arns[1]!.split(':').at(-1)! })),
    );
    assert.deepEqual([badToken.name, badToken.message], ['InvalidParameterException', 'Invalid token']);

    await sns.send(new UnsubscribeCommand({ SubscriptionArn: arns[0] }));
    const gone = await snsError(sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: arns[0] })));
    assert.deepEqual([gone.name, gone.status], ['NotFoundException', 404]);
    const configSub = await snsError(
      sns.send(new UnsubscribeCommand({ SubscriptionArn: `${arn('config-topic')}:config-hook` })),
    );
    assert.deepEqual([configSub.name, configSub.status], ['AuthorizationErrorException', 403]);
  });

  test('Subscribe with protocol lambda: each message queues an invocation of the rowcast function the ARN names', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'api-to-function' }));
    const FunctionArn = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:sns-target`;
    const { SubscriptionArn } = await sns.send(
      new SubscribeCommand({ TopicArn, Protocol: 'lambda', Endpoint: FunctionArn, ReturnSubscriptionArn: true }),
    );
    const attrs = (await sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn }))).Attributes!;
    assert.deepEqual([attrs.Protocol, attrs.Endpoint], ['lambda', FunctionArn]);
    const sent = await sns.send(new PublishCommand({ TopicArn, Message: JSON.stringify({ hello: 'function' }) }));
    const { rows } = await eventually(async () => {
      const r = await db.pool.query(`SELECT function, payload FROM rowcast.invocations WHERE message_id = $1`, [
        sent.MessageId,
      ]);
      return r.rowCount ? r : null;
    }, 'the invocation queued by the lambda subscription');
    assert.equal(rows[0].function, 'sns-target');
  });

  test("Subscribe with protocol email: an email subscription sent through aws.sns.email's SMTP server", async () => {
    const aws = awsSchema.parse({
      region: REGION,
      accountId: ACCOUNT,
      sns: { email: { from: 'rowcast@example.com', smtp: { host: 'smtp.example.com' } } },
    });
    const operations = new SnsOperations({ pool: db.pool, aws, pageSize: 100 }).operations;
    const form = (fields: Record<string, string>) => new QueryParams(new URLSearchParams(fields).toString());
    const xml = await operations.Subscribe!(
      form({
        TopicArn: arn('api-events'),
        Protocol: 'email-json',
        Endpoint: 'ops@example.com',
        ReturnSubscriptionArn: 'true',
      }),
    );
    const id = /<SubscriptionArn>[^<]*:([0-9a-f-]{36})<\/SubscriptionArn>/.exec(xml!)![1];
    const { rows } = await db.pool.query(
      'SELECT protocol, endpoint, settings, owner, sns_state FROM rowcast.subscriptions WHERE name = $1',
      [id],
    );
    assert.deepEqual(
      [rows[0].protocol, rows[0].endpoint, rows[0].owner],
      ['email-json', 'mailto:ops@example.com', 'api'],
    );
    // SNS's mails (format sns), and its SubscriptionConfirmation first.
    assert.deepEqual([rows[0].settings.format, rows[0].sns_state], ['sns', 'pending_confirmation']);
    await assert.rejects(
      operations.Subscribe!(
        form({
          TopicArn: arn('api-events'),
          Protocol: 'email',
          Endpoint: 'people@example.com',
          'Attributes.entry.1.key': 'RawMessageDelivery',
          'Attributes.entry.1.value': 'true',
        }),
      ),
      {
        message:
          'Invalid parameter: Attributes Reason: Delivery protocol [email] does not support raw message delivery.',
      },
    );
    assert.deepEqual(rows[0].settings.options, {
      to: ['ops@example.com'],
      from: 'rowcast@example.com',
      smtp: { host: 'smtp.example.com', secure: false, port: 587 },
    });
  });

  test('Subscribe refuses what rowcast cannot deliver, naming the fix', async () => {
    const TopicArn = arn('api-events');
    const sqs = await snsError(
      sns.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:eu-west-1:123456789012:q' })),
    );
    assert.match(sqs.message, /protocol sqs is not supported/);
    const email = await snsError(
      sns.send(new SubscribeCommand({ TopicArn, Protocol: 'email', Endpoint: 'ops@example.com' })),
    );
    assert.match(email.message, /aws\.sns\.email/);
    const scheme = await snsError(
      sns.send(new SubscribeCommand({ TopicArn, Protocol: 'https', Endpoint: 'http://example.com/x' })),
    );
    assert.match(scheme.message, /https:\/\//);
    const dlq = await snsError(
      sns.send(
        new SubscribeCommand({
          TopicArn,
          Protocol: 'http',
          Endpoint: `${receiver.url}/d`,
          Attributes: {
            RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:eu-west-1:123456789012:dlq' }),
          },
        }),
      ),
    );
    assert.match(dlq.message, /SNS topic/);
    const lambda = await snsError(
      sns.send(
        new SubscribeCommand({
          TopicArn,
          Protocol: 'lambda',
          Endpoint: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:missing`,
        }),
      ),
    );
    assert.match(lambda.message, /no function missing/);
    const raw = await snsError(
      sns.send(
        new SubscribeCommand({
          TopicArn,
          Protocol: 'lambda',
          Endpoint: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:sns-target`,
          Attributes: { RawMessageDelivery: 'true' },
        }),
      ),
    );
    assert.equal(
      raw.message,
      'Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support raw message delivery.',
    );
  });

  test('FIFO topics: MessageGroupId required, content-based deduplication, sequence numbers', async () => {
    const { TopicArn } = await sns.send(
      new CreateTopicCommand({
        Name: 'api-ledger.fifo',
        Attributes: { FifoTopic: 'true', ContentBasedDeduplication: 'true' },
      }),
    );
    assert.equal(TopicArn, arn('api-ledger.fifo'));
    assert.equal((await sns.send(new GetTopicAttributesCommand({ TopicArn }))).Attributes?.FifoTopic, 'true');
    const noGroup = await snsError(sns.send(new PublishCommand({ TopicArn, Message: 'x' })));
    assert.match(noGroup.message, /MessageGroupId/);
    const first = await sns.send(new PublishCommand({ TopicArn, Message: 'credit 10', MessageGroupId: 'acct-1' }));
    const second = await sns.send(new PublishCommand({ TopicArn, Message: 'debit 4', MessageGroupId: 'acct-1' }));
    assert.match(first.SequenceNumber!, /^\d{20}$/);
    assert.ok(BigInt(second.SequenceNumber!) > BigInt(first.SequenceNumber!));
    // The same content within the window is a duplicate: answered with the first one's MessageId and SequenceNumber, as SNS does.
    const again = await sns.send(new PublishCommand({ TopicArn, Message: 'credit 10', MessageGroupId: 'acct-1' }));
    assert.deepEqual([again.MessageId, again.SequenceNumber], [first.MessageId, first.SequenceNumber]);
    const batch = await sns.send(
      new PublishBatchCommand({
        TopicArn,
        PublishBatchRequestEntries: [
          { Id: 'dup', Message: 'debit 4', MessageGroupId: 'acct-1' },
          { Id: 'new', Message: 'credit 1', MessageGroupId: 'acct-1' },
          { Id: 'dup-in-batch', Message: 'credit 1', MessageGroupId: 'acct-1' },
        ],
      }),
    );
    const byId = Object.fromEntries(batch.Successful!.map((x) => [x.Id, [x.MessageId, x.SequenceNumber]]));
    assert.deepEqual(byId.dup, [second.MessageId, second.SequenceNumber]);
    assert.deepEqual(byId['dup-in-batch'], byId.new);
    const { rows } = await db.pool.query(
      `SELECT body FROM rowcast.messages WHERE topic = 'api-ledger.fifo' ORDER BY seq`,
    );
    assert.deepEqual(
      rows.map((r) => r.body),
      ['credit 10', 'debit 4', 'credit 1'],
    );

    const { TopicArn: explicit } = await sns.send(
      new CreateTopicCommand({ Name: 'api-explicit.fifo', Attributes: { FifoTopic: 'true' } }),
    );
    const noDedup = await snsError(
      sns.send(new PublishCommand({ TopicArn: explicit, Message: 'x', MessageGroupId: 'g' })),
    );
    assert.match(noDedup.message, /ContentBasedDeduplication/);
    const once = await sns.send(
      new PublishCommand({ TopicArn: explicit, Message: 'x', MessageGroupId: 'g', MessageDeduplicationId: 'd-1' }),
    );
    const twice = await sns.send(
      new PublishCommand({
        TopicArn: explicit,
        Message: 'other content, same id',
        MessageGroupId: 'g',
        MessageDeduplicationId: 'd-1',
      }),
    );
    assert.deepEqual([twice.MessageId, twice.SequenceNumber], [once.MessageId, once.SequenceNumber]);
    const standard = await snsError(
      sns.send(new PublishCommand({ TopicArn: arn('api-events'), Message: 'x', MessageDeduplicationId: 'd-1' })),
    );
    assert.match(standard.message, /MessageDeduplicationId/);
  });

  test('PublishBatch: Successful and Failed entries, and the batch errors', async () => {
    const TopicArn = arn('api-structured');
    const result = await sns.send(
      new PublishBatchCommand({
        TopicArn,
        PublishBatchRequestEntries: [
          { Id: 'one', Message: 'first' },
          { Id: 'two', Message: JSON.stringify({ http: 'no default' }), MessageStructure: 'json' },
          { Id: 'three', Message: 'third', Subject: 'Third' },
        ],
      }),
    );
    assert.deepEqual(
      result.Successful?.map((s) => s.Id),
      ['one', 'three'],
    );
    assert.deepEqual(
      result.Failed?.map((f) => [f.Id, f.Code, f.SenderFault]),
      [['two', 'InvalidParameter', true]],
    );
    const ids = result.Successful!.map((s) => s.MessageId!);
    assert.equal((await db.pool.query('SELECT 1 FROM rowcast.messages WHERE id = ANY($1::uuid[])', [ids])).rowCount, 2);

    const empty = await snsError(sns.send(new PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: [] })));
    assert.equal(empty.name, 'EmptyBatchRequestException');
    const same = await snsError(
      sns.send(
        new PublishBatchCommand({
          TopicArn,
          PublishBatchRequestEntries: [
            { Id: 'a', Message: 'x' },
            { Id: 'a', Message: 'y' },
          ],
        }),
      ),
    );
    assert.equal(same.name, 'BatchEntryIdsNotDistinctException');
    const many = await snsError(
      sns.send(
        new PublishBatchCommand({
          TopicArn,
          PublishBatchRequestEntries: Array.from({ length: 11 }, (_, i) => ({ Id: `m${i}`, Message: 'x' })),
        }),
      ),
    );
    assert.equal(many.name, 'TooManyEntriesInBatchRequestException');
    const badId = await snsError(
      sns.send(new PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: [{ Id: 'not ok!', Message: 'x' }] })),
    );
    assert.equal(badId.name, 'InvalidBatchEntryIdException');
    const missing = await snsError(
      sns.send(
        new PublishBatchCommand({
          TopicArn: arn('never-made'),
          PublishBatchRequestEntries: [{ Id: 'a', Message: 'x' }],
        }),
      ),
    );
    assert.deepEqual([missing.name, missing.status], ['NotFoundException', 404]);
  });
});

describe('authentication', () => {
  test("a wrong secret, an unknown key, an unsigned request and a stale signature are refused with SNS's errors", async () => {
    const wrong = client({ ...KEY, secretAccessKey: 'not-the-secret-access-key-at-all' });
    const mismatch = await snsError(wrong.send(new ListTopicsCommand({})));
    assert.deepEqual([mismatch.name, mismatch.status], ['SignatureDoesNotMatch', 403]);
    wrong.destroy();
    const stranger = client({ accessKeyId: 'AKIDNOBODYKNOWS00001', secretAccessKey: KEY.secretAccessKey });
    const unknown = await snsError(stranger.send(new ListTopicsCommand({})));
    assert.deepEqual([unknown.name, unknown.status], ['InvalidClientTokenId', 403]);
    stranger.destroy();
    const skewed = new SNSClient({
      endpoint: rowcast.httpUrl,
      region: REGION,
      credentials: KEY,
      maxAttempts: 1,
      systemClockOffset: -20 * 60_000,
    });
    const expired = await snsError(skewed.send(new ListTopicsCommand({})));
    assert.deepEqual([expired.name, expired.status], ['RequestExpired', 400]);
    skewed.destroy();

    const unsigned = await fetch(`${rowcast.httpUrl}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=ListTopics&Version=2010-03-31',
    });
    assert.equal(unsigned.status, 403);
    const xml = await unsigned.text();
    assert.match(
      xml,
      /^<\?xml version="1.0"\?>\n<ErrorResponse xmlns="http:\/\/sns.amazonaws.com\/doc\/2010-03-31\/"><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code>/,
    );
    // A tampered body: signed for one message, sent with another.
    const tampered = client();
    tampered.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { body: string };
        request.body = request.body.replace('Message=signed', 'Message=singed'); // same length: Content-Length holds
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'tamperAfterSigning' },
    );
    const changed = await snsError(
      tampered.send(new PublishCommand({ TopicArn: arn('api-events'), Message: 'signed' })),
    );
    assert.deepEqual([changed.name, changed.status], ['SignatureDoesNotMatch', 403]);
    tampered.destroy();
  });
});

describe('ownership', () => {
  test('apply leaves what the API made; the admin API shows who made what; a config topic with API subscriptions is not dropped', async () => {
    await applyConfig(db.pool, config());
    const { rows } = await db.pool.query(`SELECT name FROM rowcast.topics WHERE owner = 'api' ORDER BY name`);
    assert.ok(
      rows.some((r) => r.name === 'api-events') && rows.some((r) => r.name === 'api-ledger.fifo'),
      JSON.stringify(rows),
    );
    assert.ok(
      (await db.pool.query(`SELECT 1 FROM rowcast.subscriptions WHERE owner = 'api' AND topic = 'api-events'`))
        .rowCount! >= 1,
    );

    const list = (
      (await (await fetch(`${rowcast.httpUrl}/api/topics`)).json()) as { items: { name: string; owner: string }[] }
    ).items;
    assert.equal(list.find((t) => t.name === 'api-events')?.owner, 'api');
    assert.equal(list.find((t) => t.name === 'config-topic')?.owner, 'config');
    const subList = (
      (await (await fetch(`${rowcast.httpUrl}/api/subscriptions`)).json()) as {
        items: { name: string; topic: string; owner: string }[];
      }
    ).items;
    assert.equal(subList.find((s) => s.name === 'config-hook')?.owner, 'config');
    assert.ok(subList.some((s) => s.topic === 'api-events' && s.owner === 'api'));

    // An API subscription on a config topic: removing the topic from the config would delete it, so apply refuses.
    const { SubscriptionArn: onConfig } = await sns.send(
      new SubscribeCommand({
        TopicArn: arn('config-topic'),
        Protocol: 'http',
        Endpoint: `${receiver.url}/on-config-topic`,
        ReturnSubscriptionArn: true,
      }),
    );
    const pendingName = onConfig!.split(':').at(-1)!;
    // Its confirmation state, in the admin API and in rowcast status.
    const withState = (
      (await (await fetch(`${rowcast.httpUrl}/api/subscriptions`)).json()) as {
        items: { name: string; confirmation: string }[];
      }
    ).items;
    assert.equal(withState.find((s) => s.name === pendingName)?.confirmation, 'pending');
    assert.equal(withState.find((s) => s.name === 'config-hook')?.confirmation, 'confirmed');
    const statusLine = formatStatus(await getStatus(db.pool))
      .split('\n')
      .find((l) => l.startsWith(pendingName));
    assert.match(statusLine ?? '', /active, pending confirmation/);
    // Who made it, beside the config's own (issue 17: both shown in status).
    assert.match(statusLine ?? '', /\bSNS API\b/);
    assert.match(
      formatStatus(await getStatus(db.pool))
        .split('\n')
        .find((l) => l.startsWith('config-hook')) ?? '',
      /\sconfig(\s|$)/,
    );
    // A dead delivery of a pending subscription is not redriven (it receives nothing until confirmed).
    const msg = await sns.send(new PublishCommand({ TopicArn: arn('config-topic'), Message: 'dead before' }));
    const dead = (
      await db.pool.query(
        `INSERT INTO rowcast.deliveries (message_id, subscription, state) VALUES ($1, $2, 'dead') RETURNING id::text`,
        [msg.MessageId, pendingName],
      )
    ).rows[0].id;
    await assert.rejects(redriveDelivery(db.pool, dead), /waiting for its endpoint to confirm it/);
    assert.equal(await redrive(db.pool, { subscription: pendingName }), 0);
    // Nor resent: a resend, like a redrive, sends nothing to an unconfirmed endpoint.
    await assert.rejects(resendDelivery(db.pool, dead), /waiting for its endpoint to confirm it/);
    assert.equal(
      (await db.pool.query('SELECT state FROM rowcast.deliveries WHERE id = $1', [dead])).rows[0].state,
      'dead',
    );
    await assert.rejects(
      apply(db.pool, parseConfig({ aws: { region: REGION, accountId: ACCOUNT } }, 'test config')),
      /subscriptions made through the SNS API/,
    );
    assert.equal((await db.pool.query(`SELECT 1 FROM rowcast.topics WHERE name = 'config-topic'`)).rowCount, 1);

    // A config that declares a name the API made takes it over: from then on the config owns it.
    await applyConfig(db.pool, { ...config(), topics: { 'config-topic': {}, 'api-many': {} } });
    assert.equal(
      (await db.pool.query(`SELECT owner FROM rowcast.topics WHERE name = 'api-many'`)).rows[0].owner,
      'config',
    );
    const refused = await snsError(sns.send(new DeleteTopicCommand({ TopicArn: arn('api-many') })));
    assert.equal(refused.name, 'AuthorizationErrorException');
  });

  test('an API subscription still on delivery rows (made before Subscribe started cursors) reads through one from the next apply, its backlog moved', async () => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: 'api-upgraded' }));
    const { SubscriptionArn } = await sns.send(
      new SubscribeCommand({
        TopicArn,
        Protocol: 'http',
        Endpoint: `${receiver.url}/upgraded`,
        ReturnSubscriptionArn: true,
      }),
    );
    await confirmThroughUrl('upgraded');
    const name = SubscriptionArn!.split(':').at(-1)!;
    // As Subscribe made it before: rows and no cursor. Paused, so that what is published waits as pending rows.
    await db.pool.query('UPDATE rowcast.subscriptions SET cursor = false WHERE name = $1', [name]);
    await db.pool.query('DELETE FROM rowcast.cursors WHERE subscription = $1', [name]);
    await pauseSubscription(db.pool, name);
    const backlog = [];
    for (const Message of ['one', 'two']) backlog.push(await sns.send(new PublishCommand({ TopicArn, Message })));
    const pendingRows = async () =>
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = $1 AND state = 'pending'`,
          [name],
        )
      ).rows[0].n;
    assert.equal(await pendingRows(), 2);

    // The config as the test before left it (it took over api-many).
    const current = parseConfig({ ...config(), topics: { 'config-topic': {}, 'api-many': {} } }, 'test config');
    const { steps } = await apply(db.pool, current);
    const mine = [...new Set(steps.filter((s) => s.summary.includes(name)).map((s) => s.summary))];
    assert.equal(mine.length, 1, `one change in the plan: ${JSON.stringify(mine)}`);
    assert.match(mine[0]!, /made through the SNS API\): reads its topic through a cursor.*moves its backlog/);
    assert.equal(await pendingRows(), 0, 'the backlog moved onto the cursor');
    const { rows } = await db.pool.query(
      `SELECT s.cursor, c.subscription IS NOT NULL AS started
         FROM rowcast.subscriptions s LEFT JOIN rowcast.cursors c ON c.subscription = s.name WHERE s.name = $1`,
      [name],
    );
    assert.deepEqual(rows[0], { cursor: true, started: true });

    await resumeSubscription(db.pool, name);
    const later = await sns.send(new PublishCommand({ TopicArn, Message: 'three' }));
    for (const sent of [...backlog, later]) {
      await notificationOf('upgraded', sent.MessageId);
      await eventually(
        async () => (await deliveryOf(SubscriptionArn, sent.MessageId)).state === 'done',
        `${sent.MessageId} done`,
      );
    }
    // (Its SubscriptionConfirmation had a row: a handshake is sent to its subscription only.)
    const leftRows = await db.pool.query(
      'SELECT 1 FROM rowcast.deliveries WHERE subscription = $1 AND message_id = ANY ($2::uuid[])',
      [name, [...backlog, later].map((m) => m.MessageId)],
    );
    assert.equal(leftRows.rowCount, 0, 'no delivery row: all three through the cursor');
    const again = await apply(db.pool, current);
    assert.deepEqual(
      again.steps.filter((s) => s.summary.includes(name)),
      [],
      'nothing more to change',
    );
  });
});

describe('rowcast start', () => {
  test('serves the SNS API from the config (a secret from the environment), beside a bearer-token admin API, and never prints the secret', async () => {
    const port = await freePort();
    const secret = 'secret-from-the-environment-0002';
    const config = writeConfigFile({
      // What `rowcast start` reads of the config: the runtime and aws (topics and subscriptions are in the database).
      runtime: { http: { port, token: 'admin-token-for-this-test' } },
      aws: {
        region: REGION,
        accountId: ACCOUNT,
        credentials: { AKIDFROMTHEENVIRONMENT: { env: 'ROWCAST_TEST_SNS_SECRET' } },
      },
    });
    const proc = RowcastProcess.start(config.file, db.url, {
      env: { ROWCAST_TEST_SNS_SECRET: secret, ROWCAST_LOG_LEVEL: 'debug' },
    });
    const started = new SNSClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: REGION,
      credentials: { accessKeyId: 'AKIDFROMTHEENVIRONMENT', secretAccessKey: secret },
      maxAttempts: 1,
    });
    try {
      await proc.ready(db.pool);
      // The HTTP server listens once the workers have started.
      await eventually(
        () => fetch(`http://127.0.0.1:${port}/livez`).then((r) => r.ok),
        'the HTTP server of rowcast start',
      );
      const { Topics } = await started.send(new ListTopicsCommand({}));
      assert.ok(Topics?.some((t) => t.TopicArn === arn('config-topic')));
      await started.send(new PublishCommand({ TopicArn: arn('config-topic'), Message: 'through rowcast start' }));
      // The SNS API authenticates by signature; the rest of the server still wants the bearer token.
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/topics`)).status, 401);
    } finally {
      started.destroy();
      proc.kill('SIGTERM');
      await proc.exit(30_000);
      config.remove();
    }
    assert.ok(proc.output.includes('sns api request'), 'debug output of the SNS API was printed');
    assert.ok(!proc.output.includes(secret), 'the secret access key was printed');
  });
});

describe('boto3', () => {
  const python = promisify(execFile)('python3', ['-c', 'import boto3'], { timeout: 30_000 }).then(
    () => null,
    (err: Error) =>
      `python3 with boto3 is not available (${err.message.split('\n')[0]}); install Debian's python3-boto3`,
  );

  test('boto3 in two steps: subscribe (pending confirmation), confirm through SubscribeURL, publish; the notification verifies', async (t) => {
    const missing = await python;
    if (missing) return t.skip(missing);
    const ca = join(mkdtempSync(join(tmpdir(), 'rowcast-sns-ca-')), 'ca.pem');
    writeFileSync(ca, proxy.cert);
    const { stdout } = await promisify(execFile)(
      'python3',
      ['test/fixtures/sns/boto3-subscribe-publish.py', rowcast.httpUrl!, ca],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: KEY.accessKeyId,
          AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        },
        timeout: 120_000,
      },
    );
    rmSync(dirname(ca), { recursive: true, force: true });
    const out = JSON.parse(stdout) as {
      topicArn: string;
      pending: string;
      subscriptionArn: string;
      pendingConfirmation: string;
      messageId: string;
      notification: { headers: Record<string, string>; body: string };
      notFound: string | null;
    };
    assert.equal(out.topicArn, arn('boto3-orders'));
    assert.equal(out.pending, 'pending confirmation');
    assert.match(out.subscriptionArn, new RegExp(`^${arn('boto3-orders')}:[0-9a-f-]{36}$`));
    assert.equal(out.pendingConfirmation, 'false');
    assert.equal(out.notFound, 'NotFound');
    assert.equal(out.notification.headers['x-amz-sns-message-id'], out.messageId);
    assert.equal(out.notification.headers['x-amz-sns-subscription-arn'], out.subscriptionArn);
    const message = await validateSnsMessage(out.notification.body);
    assert.equal(message.Subject, 'Order placed');
    // The "http" message of the structure (SNS messages are strings).
    assert.deepEqual(JSON.parse(message.Message!), { order: 42, via: 'boto3' });
    assert.deepEqual(JSON.parse(out.notification.body).MessageAttributes, {
      kind: { Type: 'String', Value: 'order' },
      total: { Type: 'Number', Value: '99.5' },
    });
  });
});

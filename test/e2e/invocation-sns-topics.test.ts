import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { awsSchema } from '../../src/config/aws-schema.js';
import { InvocationSnsEndpoint } from '../../src/functions/invocation-sns-endpoint.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

// A function's SDK endpoint reads a topic once and keeps it until the function worker hears of a change
// (NOTIFY rowcast_config → forgetTopics()): what must hold is that a change is seen after that, that a topic that
// did not exist is looked up again, and that the endpoint's own topic actions are seen at once.

let db: TestDatabase;
let endpoint: InvocationSnsEndpoint;
const ARN = (topic: string) => `arn:aws:sns:us-east-1:000000000000:${topic}`;

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, { topics: { small: { maxMessageSize: 1024 } } });
  endpoint = new InvocationSnsEndpoint(db.pool, awsSchema.parse({}), createLogger('silent'));
  await endpoint.listen();
});

after(async () => {
  await endpoint?.close();
  await db?.drop();
});

async function call(url: string, params: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ Version: '2010-03-31', ...params }).toString(),
  });
  return { status: res.status, text: await res.text() };
}

const publish = (url: string, topic: string, message: string) =>
  call(url, { Action: 'Publish', TopicArn: ARN(topic), Message: message });

test('a topic is read once, and again after forgetTopics(); an unknown topic is not remembered', async () => {
  const slot = endpoint.slot();
  slot.begin('invocation-1');
  try {
    assert.equal((await publish(slot.url, 'small', 'x'.repeat(2000))).status, 400, 'over the topic’s 1 KiB');
    await db.pool.query(`UPDATE rowcast.topics SET max_message_size = 4096 WHERE name = 'small'`);
    assert.equal((await publish(slot.url, 'small', 'x'.repeat(2000))).status, 400, 'kept until told');
    endpoint.forgetTopics();
    assert.equal((await publish(slot.url, 'small', 'x'.repeat(2000))).status, 200, 'read again');

    const unknown = await publish(slot.url, 'later', 'hello');
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /NotFound/);
    await db.pool.query(`INSERT INTO rowcast.topics (name) VALUES ('later')`);
    assert.equal((await publish(slot.url, 'later', 'hello')).status, 200, 'a topic created since is found');
    assert.deepEqual(
      slot.end().map((m) => m.topic),
      ['small', 'later'],
    );
  } finally {
    slot.close();
  }
});

test('a topic action through the endpoint is seen by the next publish at once', async () => {
  const slot = endpoint.slot();
  slot.begin('invocation-2');
  try {
    assert.equal((await publish(slot.url, 'small', 'x'.repeat(5000))).status, 400);
    const set = await call(slot.url, {
      Action: 'SetTopicAttributes',
      TopicArn: ARN('small'),
      AttributeName: 'DisplayName',
      AttributeValue: 'Small',
    });
    assert.equal(set.status, 200, set.text);
    await db.pool.query(`UPDATE rowcast.topics SET max_message_size = 8192 WHERE name = 'small'`);
    const created = await call(slot.url, { Action: 'CreateTopic', Name: 'fresh' });
    assert.equal(created.status, 200, created.text);
    assert.equal((await publish(slot.url, 'small', 'x'.repeat(5000))).status, 200);
  } finally {
    slot.close();
  }
});

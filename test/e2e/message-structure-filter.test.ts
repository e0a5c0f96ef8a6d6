import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { RowcastRuntime } from '../../src/index.js';
import { type NewMessage, publishMessages } from '../../src/routing/fan-out.js';
import { withTransaction } from '../../src/store/pool.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  settled,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * SNS's MessageStructure 'json' gives each protocol its own message. A MessageBody filter policy is matched against
 * the message the subscription would receive, as LocalStack's SNS does (message_content(protocol)): with delivery
 * rows (matched at fan-out) and through a cursor (matched at delivery) alike.
 */
let db: TestDatabase;
let rowcast: RowcastRuntime;
let receiver: WebhookReceiver;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  const special = { filterPolicy: { kind: ['special'] }, filterPolicyScope: 'MessageBody' as const };
  await applyConfig(db.pool, {
    topics: { structured: {} },
    subscriptions: {
      rows: { topic: 'structured', protocol: 'http', endpoint: `${receiver.url}/rows`, ...special },
      cursor: { topic: 'structured', protocol: 'http', endpoint: `${receiver.url}/cursor`, cursor: true, ...special },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

const message = (n: number, body: object, http?: object): NewMessage => ({
  id: randomUUID(),
  topic: 'structured',
  subject: null,
  body: JSON.stringify({ n, ...body }),
  contentType: 'application/json',
  attributes: {},
  groupKey: null,
  protocolBodies: http ? { http: JSON.stringify({ n, ...http }) } : null,
});

const received = (path: string) =>
  receiver.requests
    .filter((r) => r.path.endsWith(path))
    .map((r) => (r.json as { body: { n: number } }).body.n)
    .sort();

test("a MessageBody filter policy matches the message for the subscription's protocol, with rows and with a cursor", async () => {
  for (const m of [
    message(1, { kind: 'plain' }, { kind: 'special' }), // http's message matches: sent
    message(2, { kind: 'special' }, { kind: 'plain' }), // only the default matches: not sent to http
    message(3, { kind: 'special' }), // no per-protocol message: the default matches
  ])
    await withTransaction(db.pool, (client) => publishMessages(client, [m], null));
  for (const path of ['/rows', '/cursor'])
    await eventually(() => received(path).length >= 2, `two messages at ${path}`);
  await settled(db.pool);
  assert.deepEqual(received('/rows'), [1, 3]);
  assert.deepEqual(received('/cursor'), [1, 3]);
});

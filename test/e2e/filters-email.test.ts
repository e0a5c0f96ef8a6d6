import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { parseConfig, getStatus, type RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  settled,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let smtp: SMTPServer;
const mails: ParsedMail[] = [];

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      void simpleParser(stream).then((mail) => {
        mails.push(mail);
        callback();
      }, callback);
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  const port = (smtp.server.address() as { port: number }).port;
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, total int, region text)`);
  await applyConfig(db.pool, {
    topics: { orders: {} },
    captures: { orders: { table: 'orders', topic: 'orders', subject: 'Order changed' } },
    subscriptions: {
      everything: { topic: 'orders', protocol: 'http', endpoint: `${receiver.url}?everything` },
      'inserts-only': {
        topic: 'orders',
        protocol: 'http',
        endpoint: `${receiver.url}?inserts`,
        filterPolicy: { op: ['INSERT'] },
      },
      'big-eu-orders': {
        topic: 'orders',
        protocol: 'http',
        endpoint: `${receiver.url}?big-eu`,
        filterPolicyScope: 'MessageBody',
        filterPolicy: { after: { total: [{ numeric: ['>', 100] }], region: [{ prefix: 'eu-' }] } },
      },
      'ops-mail': {
        topic: 'orders',
        protocol: 'email',
        options: { to: 'ops@example.com', from: 'rowcast <rowcast@example.com>', smtp: { host: '127.0.0.1', port } },
        filterPolicy: { op: ['DELETE'] },
      },
    },
  });
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  await receiver?.close();
  await new Promise<void>((r) => smtp.close(() => r()));
  await db?.drop();
});

const at = (suffix: string) => receiver.requests.filter((r) => r.path.endsWith(suffix)).map((r) => r.json.body);

describe('filter policies in the chain', () => {
  test('attribute and body policies pick their messages; the unfiltered subscription gets all', async () => {
    await db.pool.query(`INSERT INTO orders VALUES (1, 50, 'eu-west'), (2, 500, 'eu-north'), (3, 900, 'us-east')`);
    await db.pool.query(`UPDATE orders SET total = 700 WHERE id = 1`);
    await db.pool.query(`DELETE FROM orders WHERE id = 3`);
    await eventually(() => at('?everything').length === 5, 'all five changes at the unfiltered subscription');
    await eventually(() => at('?inserts').length === 3 && at('?big-eu').length === 2, 'the filtered subscriptions');
    await settled(db.pool);
    assert.deepEqual(
      at('?inserts')
        .map((b) => b.op)
        .sort(),
      ['INSERT', 'INSERT', 'INSERT'],
    );
    assert.deepEqual(
      at('?big-eu')
        .map((b) => `${b.op} ${b.after.id}`)
        .sort(),
      ['INSERT 2', 'UPDATE 1'],
    );
  });

  test('a message that matches no subscription is counted', async () => {
    const before = (await getStatus(db.pool)).topics[0]!.unmatched;
    assert.equal(before, 0, 'every message so far reached at least the unfiltered subscription');
  });

  test('invalid filter policies are refused at load, naming the subscription and the path', () => {
    assert.throws(
      () =>
        parseConfig({
          topics: { t: {} },
          subscriptions: {
            s: {
              topic: 't',
              protocol: 'http',
              endpoint: 'http://x.test/',
              filterPolicy: { price: [{ numeric: ['>'] }] },
            },
          },
        }),
      /subscriptions\.s\.filterPolicy: price: numeric/,
    );
  });
});

describe('email subscriptions in the chain', () => {
  test('a DELETE reaches the ops inbox as a readable mail', async () => {
    const mail = await eventually(() => mails[0], 'the mail');
    assert.equal(mails.length, 1, 'only the DELETE passed the filter');
    assert.equal(mail.subject, 'Order changed');
    assert.equal((mail.to as { text: string }).text, 'ops@example.com');
    assert.match(mail.text ?? '', /"op": "DELETE"/);
    assert.match(mail.messageId ?? '', /@rowcast>?$/);
  });
});

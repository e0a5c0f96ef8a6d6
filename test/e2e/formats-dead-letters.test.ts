import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type CloudEvent, HTTP } from 'cloudevents';
import { getStatus, redrive } from '../../src/index.js';
import { eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
let failing: WebhookReceiver;

/** Beyond Latin-1 (CJK, an emoji outside the BMP), plus the characters the HTTP binding escapes: space, '"', '%'. */
const SUBJECT = 'Konto geändert: 口座 "€100" 50% 🙂';

/**
 * An HTTP request as a CloudEvent. The HTTP binding says a receiver percent-decodes each ce-* header before reading it
 * (3.1.3.2); the cloudevents package (10.0) leaves that to its caller, so it is done here, strictly (invalid UTF-8
 * throws).
 */
function toCloudEvent(req: { headers: Record<string, unknown>; body: string }): CloudEvent<unknown> {
  const headers = Object.fromEntries(
    Object.entries(req.headers).map(([k, v]) => [k, k.startsWith('ce-') ? decodeURIComponent(String(v)) : String(v)]),
  );
  const event = HTTP.toEvent({ headers, body: req.body });
  return (Array.isArray(event) ? event[0]! : event) as CloudEvent<unknown>;
}

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, failing, close } = await scenario({
    receivers: { receiver: {}, failing: { reply: () => ({ status: 500, body: 'subscriber down' }) } },
    tables: `CREATE TABLE accounts (id bigint PRIMARY KEY, balance numeric(30,10), owner text);
             CREATE TABLE ledger (id int PRIMARY KEY, note text)`,
    config: ({ receiver, failing }) => {
      const sub = (format: string) => ({
        topic: 'accounts',
        protocol: 'http' as const,
        endpoint: `${receiver.url}?format=${format}`,
        format: format as never,
      });
      return {
        topics: { accounts: {}, 'ops-dead-letters': {}, nobody: {}, ledger: {} },
        captures: {
          accounts: { table: 'accounts', topic: 'accounts', subject: 'account changed' },
          ledger: { table: 'ledger', topic: 'ledger', subject: SUBJECT },
          'accounts-unheard': { table: 'accounts', topic: 'nobody', operations: ['DELETE'] },
        },
        subscriptions: {
          envelope: sub('envelope'),
          raw: sub('raw'),
          structured: sub('cloudevents'),
          binary: sub('cloudevents-binary'),
          flaky: {
            topic: 'accounts',
            protocol: 'http',
            endpoint: failing.url,
            deliveryPolicy: { maxAttempts: 2, minDelay: '20ms', maxDelay: '50ms' },
            deadLetter: { topic: 'ops-dead-letters' },
          },
          ops: { topic: 'ops-dead-letters', protocol: 'http', endpoint: `${receiver.url}?ops` },
          'ledger-binary': {
            topic: 'ledger',
            protocol: 'http',
            endpoint: `${receiver.url}?ledger=binary`,
            format: 'cloudevents-binary',
          },
          'ledger-structured': {
            topic: 'ledger',
            protocol: 'http',
            endpoint: `${receiver.url}?ledger=structured`,
            format: 'cloudevents',
          },
        },
      };
    },
  }));
});

after(() => close?.());

const byPath = (suffix: string) => receiver.requests.filter((r) => r.path.endsWith(suffix));

describe('message formats', () => {
  test('envelope, raw, CloudEvents structured and binary carry the same message, exactly', async () => {
    await db.pool.query(`INSERT INTO accounts VALUES (9223372036854775807, 12345678901234567890.0123456789, 'ann')`);
    await eventually(
      () => ['envelope', 'raw', 'cloudevents', 'cloudevents-binary'].every((f) => byPath(`format=${f}`).length >= 1),
      'all four formats',
    );
    const envelope = byPath('format=envelope')[0]!;
    const id = envelope.json.id as string;
    assert.equal(envelope.json.body.after.id, '9223372036854775807');
    assert.equal(envelope.json.body.after.balance, '12345678901234567890.0123456789');

    const raw = byPath('format=raw')[0]!;
    assert.deepEqual(raw.json, envelope.json.body, 'raw is the body alone');
    assert.equal(raw.headers['webhook-id'], id);

    for (const format of ['cloudevents', 'cloudevents-binary']) {
      const req = byPath(`format=${format}`)[0]!;
      const ce = toCloudEvent(req);
      assert.ok(ce.validate(), `${format} is a valid CloudEvent`);
      assert.equal(ce.id, id, `${format}: the id is the stable message id`);
      assert.equal(ce.specversion, '1.0');
      assert.equal(ce.type, 'rowcast.change.insert');
      assert.equal(ce.source, '/rowcast/topics/accounts');
      assert.equal(ce.subject, 'account changed');
      assert.equal((ce.data as { after: { owner: string } }).after.owner, 'ann');
    }
    assert.match(String(byPath('format=cloudevents')[0]!.headers['content-type']), /^application\/cloudevents\+json/);
    assert.equal(byPath('format=cloudevents-binary')[0]!.headers['ce-id'], id);
    assert.match(
      byPath('format=cloudevents')[0]!.body,
      /"balance": ?"12345678901234567890\.0123456789"/,
      'structured data keeps every digit',
    );
  });

  test('binary CloudEvents percent-encode their ce-* headers, so a subject beyond Latin-1 arrives intact', async () => {
    await db.pool.query(`INSERT INTO ledger VALUES (1, 'paid')`);
    const delivered = async (sub: string) => {
      const req = byPath(`ledger=${sub}`)[0];
      if (req) return req;
      // Until it arrives, the delivery's error (if an attempt failed) is what a timeout reports.
      const { rows } = await db.pool.query<{ state: string; last_error: string | null }>(
        `SELECT state, last_error FROM rowcast.deliveries WHERE subscription = $1`,
        [`ledger-${sub}`],
      );
      if (rows[0]?.last_error) throw new Error(`ledger-${sub}: ${rows[0].state} after ${rows[0].last_error}`);
      return undefined;
    };
    const [binary, structured] = [
      await eventually(() => delivered('binary'), 'the binary event'),
      await eventually(() => delivered('structured'), 'the structured event'),
    ];
    for (const [name, value] of Object.entries(binary.headers)) {
      if (name.startsWith('ce-'))
        assert.match(
          String(value),
          /^[\x21\x23\x24\x26-\x7e]*(%[0-9A-F]{2}[\x21\x23\x24\x26-\x7e]*)*$/,
          `${name} is printable ASCII, percent-encoded`,
        );
    }
    assert.equal(
      binary.headers['ce-subject'],
      'Konto%20ge%C3%A4ndert:%20%E5%8F%A3%E5%BA%A7%20%22%E2%82%AC100%22%2050%25%20%F0%9F%99%82',
    );
    for (const req of [binary, structured]) {
      const ce = toCloudEvent(req);
      assert.ok(ce.validate());
      assert.equal(ce.subject, SUBJECT);
      assert.equal(ce.source, '/rowcast/topics/ledger');
      assert.equal(ce.type, 'rowcast.change.insert');
      assert.equal((ce.data as { after: { note: string } }).after.note, 'paid');
    }
    assert.equal(toCloudEvent(binary).id, toCloudEvent(structured).id, 'one message, one id');
  });
});

describe('dead letters', () => {
  test('a dead delivery is published to the dead-letter topic with its error, stays dead, and redrive by time range re-queues it', async () => {
    const rec = await eventually(() => byPath('?ops')[0], 'the dead letter', 20_000);
    assert.match(rec.json.subject, /^Dead letter from flaky: account changed/);
    assert.equal(rec.json.body.deadLetter.subscription, 'flaky');
    assert.equal(rec.json.body.deadLetter.attempts, 2);
    assert.equal(rec.json.body.deadLetter.lastStatus, 500);
    assert.match(rec.json.body.deadLetter.lastError, /HTTP 500: subscriber down/);
    assert.equal(rec.json.body.message.topic, 'accounts');
    assert.equal(rec.json.body.message.body.after.owner, 'ann');
    assert.equal(rec.json.attributes.deadLetterSubscription, 'flaky');

    const status = await getStatus(db.pool);
    assert.equal(status.subscriptions.find((s) => s.name === 'flaky')!.dead, 1);

    // A window that ended before the delivery died re-queues nothing; one that covers it re-queues it.
    assert.equal(await redrive(db.pool, { subscription: 'flaky', until: new Date(Date.now() - 3_600_000) }), 0);
    failing.reply = () => ({ status: 204 });
    assert.equal(await redrive(db.pool, { subscription: 'flaky', since: new Date(Date.now() - 3_600_000) }), 1);
    await eventually(() => failing.requests.some((r) => r.status === 204), 'the redriven delivery');
    await eventually(
      async () => (await getStatus(db.pool)).subscriptions.find((s) => s.name === 'flaky')!.dead === 0,
      'no dead deliveries left',
    );
  });
});

describe('unmatched messages', () => {
  test('a message no subscription takes is counted on its topic', async () => {
    await db.pool.query(`DELETE FROM accounts`);
    await eventually(
      async () => (await getStatus(db.pool)).topics.find((t) => t.name === 'nobody')!.unmatched === 1,
      'the unmatched count',
    );
  });
});

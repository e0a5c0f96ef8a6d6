/**
 * SNS's HTTP envelope (format 'sns') as an SNS subscriber checks it, with the `sns-validator` package (0.3.5),
 * which fetches the SigningCertURL over https (only): rowcast's certificate route is served here through a TLS
 * proxy with a test certificate that this process trusts, and http.publicUrl points at the proxy.
 * Shown: the SubscriptionConfirmation and Notifications of SignatureVersion 1 and 2 verify, a tampered body does
 * not; nothing reaches an unconfirmed or unsubscribed subscription; SubscribeURL and UnsubscribeURL answer as
 * SNS's do; RawMessageDelivery sends the bare body; a rotated key signs from then on while the old certificate
 * stays served. sns-validator 0.3.5 rejects every UnsubscribeConfirmation (its list of signed keys for that type
 * lacks Token), so that one is verified here by SNS's documented algorithm, with node:crypto.
 */
import assert from 'node:assert/strict';
import { createVerify, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { confirmSubscription, requireConfirmation } from '../../src/delivery/sns-envelope/confirmation.js';
import { snsStringToSign, type SnsEnvelopeFields } from '../../src/delivery/sns-envelope/envelope.js';
import {
  ErrorCodes,
  getDelivery,
  type RowcastConfigInput,
  sendTestMessage,
  type RowcastRuntime,
} from '../../src/index.js';
import { withTransaction } from '../../src/store/pool.js';
import { publishMessages } from '../../src/routing/fan-out.js';
import { describeRun, runCli } from '../support/cli.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { httpsGet, TlsProxy, validateSnsMessage } from '../support/sns-tls.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

const validate = validateSnsMessage;

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let proxy: TlsProxy;
let publicUrl = '';

async function publish(
  topic: string,
  body: string,
  subject: string | null = null,
  attributes: Record<string, string> = {},
): Promise<string> {
  const id = randomUUID();
  await withTransaction(db.pool, (c) =>
    publishMessages(c, [{ id, topic, subject, body, contentType: 'text/plain', attributes, groupKey: null }], null),
  );
  return id;
}

const to = (name: string) => (r: ReceivedRequest) => r.path === `/hook/${name}`;
const received = (name: string, type: string) =>
  receiver.delivered.filter((r) => to(name)(r) && r.headers['x-amz-sns-message-type'] === type);
/** A message has no delivery to a subscription, and the admin API says why (its 404). */
async function noDelivery(subscription: string, messageId: string, why: RegExp): Promise<void> {
  const { rows } = await db.pool.query('SELECT seq::text FROM rowcast.messages WHERE id = $1', [messageId]);
  await assert.rejects(getDelivery(db.pool, `${subscription}@${rows[0].seq}`), {
    code: ErrorCodes.NOT_FOUND,
    message: why,
  });
}
const WAITING = /is waiting for its SNS confirmation: it gets no messages/;
const PASSED =
  /was waiting for its SNS confirmation \(or unsubscribed\) when the message was published, so it was not sent/;

const hook = (name: string) => `${receiver.url}/${name}`;
const config = (more: RowcastConfigInput['subscriptions'] = {}): RowcastConfigInput => ({
  topics: { orders: {}, payments: { signatureVersion: 2 } },
  subscriptions: {
    v1: {
      topic: 'orders',
      protocol: 'http',
      endpoint: hook('v1'),
      format: 'sns',
      confirmation: 'required',
      deliveryPolicy: { minDelay: 100, maxDelay: 200 },
    },
    v2: {
      topic: 'payments',
      protocol: 'http',
      endpoint: hook('v2'),
      format: 'sns',
      confirmation: 'required',
      deliveryPolicy: { minDelay: 100, maxDelay: 200 },
    },
    raw: { topic: 'orders', protocol: 'http', endpoint: hook('raw'), format: 'sns', rawMessageDelivery: true },
    mail: {
      topic: 'payments',
      protocol: 'email',
      format: 'sns',
      options: { to: 'people@example.com', from: 'rowcast@example.com', smtp: { host: '127.0.0.1', port: smtpPort } },
    },
    'mail-json': {
      topic: 'payments',
      protocol: 'email-json',
      format: 'sns',
      options: { to: 'machines@example.com', from: 'rowcast@example.com', smtp: { host: '127.0.0.1', port: smtpPort } },
    },
    ...more,
  },
});

/** An SMTP server on loopback that keeps every mail. */
let smtp: SMTPServer;
let smtpPort = 0;
const mails: { to: string[]; raw: Buffer }[] = [];
const mailTo = (to: string, what: string, match: (mail: ParsedMail) => boolean): Promise<ParsedMail> =>
  eventually(async () => {
    for (const m of mails.filter((x) => x.to.includes(to))) {
      const mail = await simpleParser(m.raw);
      if (match(mail)) return mail;
    }
    return undefined;
  }, `${what} to ${to}`);
const messageIdOf = (mail: ParsedMail) => mail.headers.get('x-rowcast-message-id');

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((a) => a.address), raw: Buffer.concat(chunks) });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
  // The TLS front of rowcast's HTTP server (as a load balancer would be): sns-validator fetches certificates over https only.
  proxy = await TlsProxy.start();
  publicUrl = proxy.url;
  await applyConfig(db.pool, config());
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1', publicUrl } });
  proxy.upstream = rowcast.httpUrl!;
});

after(async () => {
  await rowcast?.stop();
  await proxy?.close();
  await receiver?.close();
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
  await db?.drop();
});

test('a subscription that must be confirmed gets a SubscriptionConfirmation that sns-validator accepts, and nothing else until confirmed', async () => {
  const request = await eventually(
    () => received('v1', 'SubscriptionConfirmation')[0],
    'the SubscriptionConfirmation of v1',
  );
  assert.equal(request.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.equal(request.headers['user-agent'], 'Amazon Simple Notification Service Agent');
  assert.equal(request.headers['x-amz-sns-topic-arn'], 'arn:aws:sns:us-east-1:000000000000:orders');
  assert.equal(request.headers['x-amz-sns-subscription-arn'], undefined, 'not a subscription yet');
  const message = await validate(request.body);
  assert.equal(message.Type, 'SubscriptionConfirmation');
  assert.equal(message.SignatureVersion, '1');
  assert.equal(request.headers['x-amz-sns-message-id'], message.MessageId);
  assert.match(message.SigningCertURL!, new RegExp(`^${publicUrl}/SimpleNotificationService-[0-9a-f]{32}\\.pem$`));
  assert.match(message.Token!, /^[0-9a-f]{128}$/);
  assert.equal(
    message.Message,
    'You have chosen to subscribe to the topic arn:aws:sns:us-east-1:000000000000:orders.\nTo confirm the subscription, visit the SubscribeURL included in this message.',
  );

  // Published while v1 is unconfirmed: raw (confirmation: none) receives it, v1 never gets a delivery of it.
  const early = await publish('orders', 'before confirmation');
  await eventually(
    () => receiver.delivered.find((r) => to('raw')(r) && r.body === 'before confirmation'),
    'the raw subscription to receive the message',
  );
  await noDelivery('v1', early, WAITING);

  // A wrong token confirms nothing, and says so in SNS's error document.
  const wrong = await httpsGet(message.SubscribeURL!.replace(/Token=[0-9a-f]+/, `Token=${'0'.repeat(128)}`));
  assert.equal(wrong.status, 400);
  assert.match(
    wrong.body,
    /<ErrorResponse xmlns="http:\/\/sns\.amazonaws\.com\/doc\/2010-03-31\/"><Error><Type>Sender<\/Type><Code>InvalidParameter<\/Code>/,
  );

  // The subscriber visits SubscribeURL, as SNS subscribers do (a GET).
  const confirmed = await httpsGet(message.SubscribeURL!);
  assert.equal(confirmed.status, 200, confirmed.body);
  assert.match(confirmed.contentType, /^text\/xml/);
  assert.match(
    confirmed.body,
    /<ConfirmSubscriptionResponse xmlns="http:\/\/sns\.amazonaws\.com\/doc\/2010-03-31\/"><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:000000000000:orders:v1<\/SubscriptionArn>/,
  );
  assert.equal((await httpsGet(message.SubscribeURL!)).status, 200, 'visiting it again is harmless');
  assert.equal(received('v1', 'Notification').length, 0);
  await noDelivery('v1', early, PASSED);
});

test('Notifications of SignatureVersion 1 and 2 verify with sns-validator; a tampered body does not', async () => {
  const id = await publish('orders', '{"order":42}', 'Order placed', { kind: 'order' });
  const request = await eventually(
    () => received('v1', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === id),
    'v1 to receive the notification',
  );
  assert.equal(request.headers['x-amz-sns-subscription-arn'], 'arn:aws:sns:us-east-1:000000000000:orders:v1');
  assert.equal(request.headers['content-type'], 'text/plain; charset=UTF-8');
  const message = await validate(request.body);
  assert.deepEqual(Object.keys(request.json), [
    'Type',
    'MessageId',
    'TopicArn',
    'Subject',
    'Message',
    'Timestamp',
    'SignatureVersion',
    'Signature',
    'SigningCertURL',
    'UnsubscribeURL',
    'MessageAttributes',
  ]);
  assert.equal(message.MessageId, id);
  assert.equal(message.Message, '{"order":42}');
  assert.equal(message.Subject, 'Order placed');
  assert.equal(message.SignatureVersion, '1');
  assert.match(message.Timestamp!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(request.json.MessageAttributes, { kind: { Type: 'String', Value: 'order' } });
  await assert.rejects(validate({ ...request.json, Message: '{"order":43}' }), /The message signature is invalid/);
  await assert.rejects(validate({ ...request.json, Subject: 'Order cancelled' }), /The message signature is invalid/);

  // The other topic signs with SHA256withRSA.
  const confirmation = await eventually(
    () => received('v2', 'SubscriptionConfirmation')[0],
    'the SubscriptionConfirmation of v2',
  );
  const asked = await validate(confirmation.body);
  assert.equal(asked.SignatureVersion, '2');
  await assert.rejects(
    validate({ ...confirmation.json, Token: `${asked.Token}0` }),
    /The message signature is invalid/,
  );
  assert.equal(
    await confirmSubscription(db.pool, 'payments', asked.Token!),
    'v2',
    "the API's ConfirmSubscription path",
  );
  const paid = await publish('payments', 'paid in full');
  const v2 = await eventually(
    () => received('v2', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === paid),
    'v2 to receive the notification',
  );
  const verified = await validate(v2.body);
  assert.equal(verified.SignatureVersion, '2');
  assert.equal('Subject' in verified, false, 'no Subject when none was set');
  await assert.rejects(validate({ ...v2.json, Message: 'paid in part' }), /The message signature is invalid/);
});

test('RawMessageDelivery sends the bare body with x-amz-sns-rawdelivery', async () => {
  const id = await publish('orders', 'just the body');
  const request = await eventually(
    () => receiver.delivered.find((r) => to('raw')(r) && r.headers['x-amz-sns-message-id'] === id),
    'the raw delivery',
  );
  assert.equal(request.body, 'just the body');
  assert.equal(request.headers['x-amz-sns-rawdelivery'], 'true');
  assert.equal(request.headers['x-amz-sns-message-type'], 'Notification');
  assert.equal(request.headers['x-amz-sns-subscription-arn'], 'arn:aws:sns:us-east-1:000000000000:orders:raw');
});

test('UnsubscribeURL stops the messages and sends an UnsubscribeConfirmation whose signature verifies; its SubscribeURL restores the subscription', async () => {
  const id = await publish('orders', 'one more');
  const notification = await eventually(
    () => received('v1', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === id),
    'v1 to receive the notification',
  );
  const unsubscribeUrl: string = notification.json.UnsubscribeURL;
  assert.ok(unsubscribeUrl.startsWith(`${publicUrl}/sns/unsubscribe?SubscriptionArn=`), unsubscribeUrl);
  const forged = await httpsGet(unsubscribeUrl.replace(/Signature=[^&]+/, 'Signature=forged'));
  assert.equal(forged.status, 403, 'knowing the ARN is not enough');
  assert.match(forged.body, /<Code>AuthorizationError<\/Code>/);

  const answer = await httpsGet(unsubscribeUrl);
  assert.equal(answer.status, 200, answer.body);
  assert.match(
    answer.body,
    /^<\?xml version="1\.0"\?>\n<UnsubscribeResponse xmlns="http:\/\/sns\.amazonaws\.com\/doc\/2010-03-31\/">/,
  );
  const request = await eventually(() => received('v1', 'UnsubscribeConfirmation')[0], 'the UnsubscribeConfirmation');
  assert.equal(request.headers['x-amz-sns-subscription-arn'], 'arn:aws:sns:us-east-1:000000000000:orders:v1');
  const message = request.json as Record<string, string>;
  assert.equal(
    message.Message,
    'You have chosen to deactivate subscription arn:aws:sns:us-east-1:000000000000:orders:v1.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.',
  );
  // sns-validator 0.3.5 signs an UnsubscribeConfirmation's keys without Token, so it rejects every genuine one.
  await assert.rejects(validate(request.body), /The message signature is invalid/);
  // SNS's algorithm (Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type), with the certificate of SigningCertURL.
  const cert = await httpsGet(message.SigningCertURL!);
  assert.equal(cert.status, 200);
  const check = (fields: Record<string, string>) =>
    createVerify('RSA-SHA1')
      .update(snsStringToSign(fields as unknown as SnsEnvelopeFields), 'utf8')
      .verify(cert.body, message.Signature!, 'base64');
  assert.ok(check(message), 'the UnsubscribeConfirmation verifies');
  assert.equal(check({ ...message, Token: `${message.Token}0` }), false, 'a changed Token does not');

  const after = await publish('orders', 'after unsubscribing');
  await eventually(
    () => receiver.delivered.find((r) => to('raw')(r) && r.body === 'after unsubscribing'),
    'the raw subscription to receive it',
  );
  await noDelivery('v1', after, /v1 is unsubscribed: it gets no messages/);

  assert.equal((await httpsGet(message.SubscribeURL!)).status, 200);
  const back = await publish('orders', 'welcome back');
  await eventually(
    () => received('v1', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === back),
    'v1 to receive messages again',
  );
  await noDelivery('v1', after, PASSED);
  assert.ok(!received('v1', 'Notification').some((r) => r.headers['x-amz-sns-message-id'] === after));
});

test('a key rotated with `rowcast rotate-signing-key` signs from then on; the old certificate stays served, so messages signed before verify', async () => {
  const before = received('v1', 'Notification').at(-1)!.json as Record<string, string>;
  const run = await runCli(['rotate-signing-key'], { env: { DATABASE_URL: db.url } });
  assert.equal(run.code, 0, describeRun(run));
  const certId = /^([0-9a-f]{32}) \(served at \/SimpleNotificationService-\1\.pem\)$/m.exec(run.stdout)?.[1];
  assert.ok(certId, run.stdout);
  // The running process picks the key up on the notification the rotation sends.
  const request = await eventually(async () => {
    const id = await publish('orders', 'signed with the new key');
    const r = await eventually(
      () => received('v1', 'Notification').find((x) => x.headers['x-amz-sns-message-id'] === id),
      'v1 to receive the notification',
    );
    return r.json.SigningCertURL === `${publicUrl}/SimpleNotificationService-${certId}.pem` && r;
  }, 'a message signed with the new key');
  assert.notEqual(request.json.SigningCertURL, before.SigningCertURL);
  await validate(request.body);
  assert.equal((await httpsGet(before.SigningCertURL!)).status, 200, 'the old certificate is still served');
  await validate(before);
  assert.equal((await httpsGet(`${publicUrl}/SimpleNotificationService-${'0'.repeat(32)}.pem`)).status, 404);
});

test('requireConfirmation (for the SNS API) sends a new token and holds the messages back again; it names the fix for a subscription without the envelope', async () => {
  await requireConfirmation(db.pool, 'raw');
  const request = await eventually(
    () => received('raw', 'SubscriptionConfirmation')[0],
    'the SubscriptionConfirmation of raw',
  );
  assert.equal(request.headers['x-amz-sns-rawdelivery'], undefined, 'handshake messages are never raw');
  const message = await validate(request.body);
  const held = await publish('orders', 'held back');
  await eventually(
    () => received('v1', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === held),
    'v1 to receive it',
  );
  await noDelivery('raw', held, WAITING);
  assert.equal(await confirmSubscription(db.pool, 'orders', message.Token!), 'raw');
  await noDelivery('raw', held, PASSED);
  await db.pool.query(
    `INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint) VALUES ('plain', 'orders', 'http', 'http://127.0.0.1:9/')`,
  );
  await assert.rejects(
    requireConfirmation(db.pool, 'plain'),
    /subscription plain has format "envelope"; SNS's handshake needs format "sns"/,
  );
  await assert.rejects(requireConfirmation(db.pool, 'nope'), /there is no subscription nope; create it first/);
});

test('apply: a subscription that no longer needs confirmation is confirmed; test messages wait for confirmation too', async () => {
  const later = {
    topic: 'orders',
    protocol: 'http',
    endpoint: hook('later'),
    format: 'sns',
    confirmation: 'required',
  } as const;
  await applyConfig(db.pool, config({ later }));
  await eventually(() => received('later', 'SubscriptionConfirmation')[0], 'the SubscriptionConfirmation of later');
  await assert.rejects(
    sendTestMessage(db.pool, 'later'),
    /subscription later is waiting for its endpoint to confirm it/,
  );
  await applyConfig(db.pool, config({ later: { ...later, confirmation: 'none' } }));
  const id = await sendTestMessage(db.pool, 'later', { message: 'hello' });
  const request = await eventually(
    () => received('later', 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === id),
    'later to receive the test message',
  );
  assert.equal((await validate(request.body)).Message, 'hello');
});

test('a message published while a subscription awaits its confirmation is not sent once it is confirmed, though no lease passed it meanwhile', async () => {
  // Its one slot is taken by the SubscriptionConfirmation, held until the endpoint confirmed (as subscribers do):
  // no lease reaches the subscription while it waits. Confirmed through the token, or by apply (confirmation: none).
  let answer!: () => void;
  const held = new Promise<void>((resolve) => (answer = resolve));
  receiver.reply = (r) =>
    r.headers['x-amz-sns-message-type'] === 'SubscriptionConfirmation' ? { status: 200, hold: held } : { status: 200 };
  const slow = {
    topic: 'orders',
    protocol: 'http',
    format: 'sns',
    confirmation: 'required',
    maxConcurrency: 1,
  } as const;
  const subscriptions = (confirmation: 'required' | 'none') => ({
    slow: { ...slow, endpoint: hook('slow') },
    'slow-apply': { ...slow, endpoint: hook('slow-apply'), confirmation },
  });
  try {
    await applyConfig(db.pool, config(subscriptions('required')));
    // Received, not answered yet.
    const arrived = (name: string) =>
      receiver.requests.find((r) => to(name)(r) && r.headers['x-amz-sns-message-type'] === 'SubscriptionConfirmation');
    const asked = await eventually(() => arrived('slow'), 'the SubscriptionConfirmation of slow');
    await eventually(() => arrived('slow-apply'), 'that of slow-apply');
    const early = await publish('orders', 'while the confirmation is in flight');
    await eventually(
      () => receiver.delivered.find((r) => to('raw')(r) && r.body === 'while the confirmation is in flight'),
      'the raw subscription to receive it',
    );
    assert.equal(await confirmSubscription(db.pool, 'orders', asked.json.Token), 'slow');
    await applyConfig(db.pool, config(subscriptions('none')));
    answer();
    const later = await publish('orders', 'once confirmed');
    for (const name of ['slow', 'slow-apply']) {
      await eventually(
        () => received(name, 'Notification').find((r) => r.headers['x-amz-sns-message-id'] === later),
        `${name} to receive the message published once it was confirmed`,
      );
      const { rows } = await db.pool.query('SELECT seq::text FROM rowcast.messages WHERE id = $1', [later]);
      // One slot: an earlier message would have been sent before this one's range completed.
      await eventually(
        async () => (await getDelivery(db.pool, `${name}@${rows[0].seq}`)).state === 'done',
        `${name}'s delivery of it done`,
      );
      await noDelivery(name, early, PASSED);
      assert.ok(!received(name, 'Notification').some((r) => r.headers['x-amz-sns-message-id'] === early), name);
    }
  } finally {
    answer();
    receiver.reply = () => ({ status: 200 });
  }
});

test("email and email-json deliveries are SNS's: the Message with the unsubscribe footer, and the signed JSON envelope", async () => {
  const id = await publish('payments', 'Invoice 7 paid', 'Payment received');
  const mail = await mailTo('people@example.com', 'the mail', (m) => messageIdOf(m) === id);
  assert.equal(mail.subject, 'Payment received');
  const [message, footer] = (mail.text ?? '').split('\n\n--\n');
  assert.equal(message, 'Invoice 7 paid');
  const unsubscribeUrl =
    /^https:\/\/127\.0\.0\.1:\d+\/sns\/unsubscribe\?SubscriptionArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Apayments%3Amail&Signature=\S+$/m.exec(
      footer ?? '',
    )?.[0];
  assert.ok(unsubscribeUrl, mail.text);
  assert.match(
    footer!,
    /^If you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:/,
  );

  const json = await mailTo('machines@example.com', 'the JSON mail', (m) => messageIdOf(m) === id);
  assert.equal(json.subject, 'Payment received');
  const envelope = await validate((json.text ?? '').trim());
  assert.deepEqual(
    [envelope.Type, envelope.MessageId, envelope.Message, envelope.SignatureVersion],
    ['Notification', id, 'Invoice 7 paid', '2'],
  );

  // Subscribed through the API, an email-json endpoint gets SNS's confirmation as JSON, an email one SNS's text.
  await requireConfirmation(db.pool, 'mail-json');
  const asked = await mailTo(
    'machines@example.com',
    'the confirmation',
    (m) => m.subject === 'AWS Notification - Subscription Confirmation',
  );
  const confirmation = await validate((asked.text ?? '').trim());
  assert.equal(confirmation.Type, 'SubscriptionConfirmation');
  await requireConfirmation(db.pool, 'mail');
  const text =
    (
      await mailTo(
        'people@example.com',
        'the confirmation',
        (m) => m.subject === 'AWS Notification - Subscription Confirmation',
      )
    ).text ?? '';
  assert.match(
    text,
    /^You have chosen to subscribe to the topic:\narn:aws:sns:us-east-1:000000000000:payments\n\nTo confirm this subscription, click or visit the link below \(If this was in error no action is necessary\):\nhttps:\/\/127\.0\.0\.1:\d+\/sns\/confirm\?Action=ConfirmSubscription&TopicArn=[^&]+&Token=[0-9a-f]{128}\n$/,
  );
  assert.equal((await httpsGet(/https:\S+/.exec(text)![0])).status, 200);
});

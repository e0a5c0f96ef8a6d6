import assert from 'node:assert/strict';
import { createVerify, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { buildSnsEnvelope, type SnsEnvelopeFields, snsStringToSign } from '../../src/delivery/sns-envelope/envelope.js';
import { certificatePath, createSigningKey } from '../../src/delivery/sns-envelope/signing-keys.js';
import { snsMessageAttributes } from '../../src/delivery/sns-envelope/sns-envelopes.js';
import { parseConfig } from '../../src/admin/config/load-config.js';

const notification: SnsEnvelopeFields = {
  Type: 'Notification',
  MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
  TopicArn: 'arn:aws:sns:us-west-2:123456789012:MyTopic',
  Subject: 'My First Message',
  Message: 'Hello world!',
  Timestamp: '2012-05-02T00:54:06.655Z',
  UnsubscribeURL: 'https://rowcast.example/sns/unsubscribe?SubscriptionArn=x&Signature=y',
  MessageAttributes: { color: { Type: 'String', Value: 'red' } },
};

const confirmation: SnsEnvelopeFields = {
  Type: 'SubscriptionConfirmation',
  MessageId: '165545c9-2a5c-472c-8df2-7ff2be2b3b1b',
  Token: '2336412f37',
  TopicArn: 'arn:aws:sns:us-west-2:123456789012:MyTopic',
  Message:
    'You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.',
  SubscribeURL: 'https://rowcast.example/sns/confirm?Action=ConfirmSubscription&TopicArn=t&Token=2336412f37',
  Timestamp: '2012-04-26T20:45:04.751Z',
};

// The strings of SNS's documentation (sns-verify-signature-of-message.html): "key\nvalue\n" per signed key, in
// byte order of the names; UnsubscribeURL, MessageAttributes and the signature fields are not signed.
test('the string to sign of a Notification: Message, MessageId, Subject (when set), Timestamp, TopicArn, Type', () => {
  assert.equal(
    snsStringToSign(notification),
    'Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n',
  );
  const { Subject: _subject, ...withoutSubject } = notification as Extract<SnsEnvelopeFields, { Type: 'Notification' }>;
  assert.equal(snsStringToSign(withoutSubject).includes('Subject'), false);
});

test('the string to sign of the handshake messages: Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type', () => {
  const expected = (type: string) =>
    `Message\n${confirmation.Message}\nMessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\nSubscribeURL\n${(confirmation as { SubscribeURL: string }).SubscribeURL}\nTimestamp\n2012-04-26T20:45:04.751Z\nToken\n2336412f37\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\n${type}\n`;
  assert.equal(snsStringToSign(confirmation), expected('SubscriptionConfirmation'));
  assert.equal(
    snsStringToSign({ ...confirmation, Type: 'UnsubscribeConfirmation' }),
    expected('UnsubscribeConfirmation'),
  );
});

test('envelopes carry SNS keys in SNS order, signed SHA1withRSA (version 1) or SHA256withRSA (version 2) with a key whose certificate rowcast made', async () => {
  const key = await createSigningKey();
  assert.match(key.certId, /^[0-9a-f]{32}$/);
  assert.equal(certificatePath(key.certId), `/SimpleNotificationService-${key.certId}.pem`);
  const cert = new X509Certificate(key.certificatePem);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.ok(cert.verify(cert.publicKey), 'self-signed');
  assert.ok(new Date(cert.validFrom) <= new Date() && new Date(cert.validTo) > new Date(), 'valid now');

  for (const version of [1, 2] as const) {
    const envelope = buildSnsEnvelope(notification, {
      version,
      privateKeyPem: key.privateKeyPem,
      certUrl: 'https://rowcast.example/cert.pem',
    });
    assert.deepEqual(Object.keys(envelope), [
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
    assert.equal(envelope.SignatureVersion, String(version));
    const verify = (text: string, algorithm: string) =>
      createVerify(algorithm).update(text, 'utf8').verify(key.certificatePem, envelope.Signature, 'base64');
    assert.ok(
      verify(snsStringToSign(notification), version === 1 ? 'RSA-SHA1' : 'RSA-SHA256'),
      `version ${version} verifies`,
    );
    assert.equal(
      verify(snsStringToSign({ ...notification, Message: 'Hello world?' }), version === 1 ? 'RSA-SHA1' : 'RSA-SHA256'),
      false,
      'a changed message does not',
    );
    assert.equal(
      verify(snsStringToSign(notification), version === 1 ? 'RSA-SHA256' : 'RSA-SHA1'),
      false,
      'nor the other hash',
    );
  }
  const handshake = buildSnsEnvelope(confirmation, {
    version: 1,
    privateKeyPem: key.privateKeyPem,
    certUrl: 'https://rowcast.example/cert.pem',
  });
  assert.deepEqual(Object.keys(handshake), [
    'Type',
    'MessageId',
    'Token',
    'TopicArn',
    'Message',
    'SubscribeURL',
    'Timestamp',
    'SignatureVersion',
    'Signature',
    'SigningCertURL',
  ]);
});

test("format 'sns' is for http and https subscriptions; its settings need it; topics say their SignatureVersion", () => {
  const topics = { t: {} };
  const config = parseConfig(
    {
      topics,
      subscriptions: {
        s: {
          topic: 't',
          protocol: 'https',
          endpoint: 'https://example.com/sns',
          format: 'sns',
          confirmation: 'required',
          rawMessageDelivery: true,
        },
      },
    },
    'c',
  );
  assert.deepEqual(
    [config.subscriptions.s!.format, (config.subscriptions.s as { confirmation: string }).confirmation],
    ['sns', 'required'],
  );
  assert.equal(config.topics.t!.signatureVersion, 1, "SNS's default");
  assert.equal(parseConfig({ topics: { t: { signatureVersion: 2 } } }, 'c').topics.t!.signatureVersion, 2);
  assert.throws(() => parseConfig({ topics: { t: { signatureVersion: 3 } } }, 'c'), /SignatureVersion 1 .* or 2/);
  assert.throws(
    () =>
      parseConfig({ topics, subscriptions: { s: { topic: 't', protocol: 'log', format: 'sns', options: {} } } }, 'c'),
    /subscriptions\.s\.format: "sns" is what SNS sends to http, https, email and email-json subscribers/,
  );
  assert.throws(
    () =>
      parseConfig(
        {
          topics,
          subscriptions: {
            s: { topic: 't', protocol: 'http', endpoint: 'http://example.com/', rawMessageDelivery: true },
          },
        },
        'c',
      ),
    /rawMessageDelivery belongs to SNS's envelope; set format: "sns"/,
  );
});

test('MessageAttributes carry the data type each attribute was published with; values as SNS sends them', () => {
  const attributes = { kind: 'order', total: '12.5', tags: ['a', 'b'], blob: 'AQID', plain: 'x' } as unknown as Record<
    string,
    string
  >;
  assert.deepEqual(
    snsMessageAttributes({
      attributes,
      attributeTypes: { kind: 'String', total: 'Number', tags: 'String.Array', blob: 'Binary' },
    }),
    {
      kind: { Type: 'String', Value: 'order' },
      total: { Type: 'Number', Value: '12.5' },
      tags: { Type: 'String.Array', Value: '["a","b"]' },
      blob: { Type: 'Binary', Value: 'AQID' },
      // Not published through the SNS API (captures, functions): a string.
      plain: { Type: 'String', Value: 'x' },
    },
  );
  assert.deepEqual(snsMessageAttributes({ attributes: { op: 'INSERT' }, attributeTypes: null }), {
    op: { Type: 'String', Value: 'INSERT' },
  });
});

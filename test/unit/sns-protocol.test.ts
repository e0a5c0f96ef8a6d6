import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { errorXml, QueryParams, SnsError, toXml } from '../../src/sns/query-protocol.js';
import { verifySigV4 } from '../../src/sns/sigv4-verify.js';
import { messageAttributes, messageStructure } from '../../src/sns/sns-attributes.js';

const KEY = { accessKeyId: 'AKIDUNITTEST00000001', secretAccessKey: 'unit-test-secret-access-key' };
const SECRETS = new Map([[KEY.accessKeyId, KEY.secretAccessKey]]);
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);

/** A request signed as the SDK signs it (the same signer, client side). */
async function signed(
  body: string,
  options: { at?: number; secret?: string; extraHeaders?: Record<string, string> } = {},
) {
  const signer = new SignatureV4({
    credentials: { ...KEY, secretAccessKey: options.secret ?? KEY.secretAccessKey },
    region: 'eu-west-1',
    service: 'sns',
    sha256: Hash.bind(null, 'sha256'),
  });
  const request = await signer.sign(
    {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 4001,
      path: '/',
      query: {},
      headers: { host: '127.0.0.1:4001', 'content-type': 'application/x-www-form-urlencoded', ...options.extraHeaders },
      body,
    },
    { signingDate: new Date(options.at ?? NOW) },
  );
  const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method: 'POST', path: '/', query: {}, headers, body };
}

const code = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (err: SnsError) => `${err.code} ${err.status}`,
  );

test("SigV4: a correctly signed request names its key; anything else gets SNS's error", async () => {
  const body = 'Action=ListTopics&Version=2010-03-31';
  assert.equal(await verifySigV4(await signed(body), SECRETS, 'sns', NOW), KEY.accessKeyId);
  // Within 15 minutes either way, and not beyond.
  assert.equal(await code(verifySigV4(await signed(body, { at: NOW - 14 * 60_000 }), SECRETS, 'sns', NOW)), 'ok');
  assert.equal(
    await code(verifySigV4(await signed(body, { at: NOW - 16 * 60_000 }), SECRETS, 'sns', NOW)),
    'RequestExpired 400',
  );
  assert.equal(
    await code(verifySigV4(await signed(body, { at: NOW + 16 * 60_000 }), SECRETS, 'sns', NOW)),
    'RequestExpired 400',
  );
  assert.equal(
    await code(verifySigV4(await signed(body, { secret: 'another-secret-entirely' }), SECRETS, 'sns', NOW)),
    'SignatureDoesNotMatch 403',
  );
  assert.equal(
    await code(
      verifySigV4({ ...(await signed(body)), body: body.replace('ListTopics', 'ListTopicz') }, SECRETS, 'sns', NOW),
    ),
    'SignatureDoesNotMatch 403',
  );
  const tamperedHeader = await signed(body);
  tamperedHeader.headers['content-type'] = 'text/plain';
  assert.equal(await code(verifySigV4(tamperedHeader, SECRETS, 'sns', NOW)), 'SignatureDoesNotMatch 403');
  assert.equal(
    await code(verifySigV4(await signed(body), new Map([['AKIDSOMEONEELSE00001', 'x']]), 'sns', NOW)),
    'InvalidClientTokenId 403',
  );
  assert.equal(await code(verifySigV4(await signed(body), SECRETS, 'sqs', NOW)), 'SignatureDoesNotMatch 403');
  const unsigned = await signed(body);
  delete unsigned.headers.authorization;
  assert.equal(await code(verifySigV4(unsigned, SECRETS, 'sns', NOW)), 'MissingAuthenticationToken 403');
  const partial = await signed(body);
  partial.headers.authorization = String(partial.headers.authorization).replace(/, Signature=.*$/, '');
  assert.equal(await code(verifySigV4(partial, SECRETS, 'sns', NOW)), 'IncompleteSignature 400');
  // A payload hash that is signed but is not the body's.
  const hashed = await signed(body, {
    extraHeaders: { 'x-amz-content-sha256': createHash('sha256').update('something else').digest('hex') },
  });
  assert.equal(await code(verifySigV4(hashed, SECRETS, 'sns', NOW)), 'SignatureDoesNotMatch 403');
  const rightHash = await signed(body, {
    extraHeaders: { 'x-amz-content-sha256': createHash('sha256').update(body).digest('hex') },
  });
  assert.equal(await code(verifySigV4(rightHash, SECRETS, 'sns', NOW)), 'ok');
});

test('awsQuery parameters: members, maps and message attributes as the SDKs send them', () => {
  const p = new QueryParams(
    'Action=PublishBatch&Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=A+%26+B&Attributes.entry.2.key=FifoTopic&Attributes.entry.2.value=true' +
      '&PublishBatchRequestEntries.member.1.Id=a&PublishBatchRequestEntries.member.1.Message=x&PublishBatchRequestEntries.member.2.Id=b' +
      '&PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name=n&PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType=Number' +
      '&PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue=5&Names.member.1=one&Names.member.2=two',
  );
  assert.deepEqual(p.entries('Attributes'), { DisplayName: 'A & B', FifoTopic: 'true' });
  assert.deepEqual(p.members('Names'), ['one', 'two']);
  assert.deepEqual(p.memberPrefixes('PublishBatchRequestEntries'), [
    'PublishBatchRequestEntries.member.1',
    'PublishBatchRequestEntries.member.2',
  ]);
  assert.deepEqual(p.messageAttributes('PublishBatchRequestEntries.member.1.MessageAttributes'), [
    { name: 'n', dataType: 'Number', stringValue: '5', binaryValue: undefined },
  ]);
  assert.throws(() => p.required('TopicArn'), /TopicArn is required/);
});

test('XML answers escape what they carry', () => {
  assert.equal(
    toXml({ Topics: [{ TopicArn: 'a<b' }, { TopicArn: 'c&d' }], NextToken: undefined }),
    '<Topics><member><TopicArn>a&lt;b</TopicArn></member><member><TopicArn>c&amp;d</TopicArn></member></Topics>',
  );
  assert.match(
    errorXml(new SnsError('NotFound', 'Topic "x" <y>', 404), 'r-1'),
    /<Error><Type>Sender<\/Type><Code>NotFound<\/Code><Message>Topic &quot;x&quot; &lt;y&gt;<\/Message><\/Error><RequestId>r-1<\/RequestId>/,
  );
});

test('message attributes and MessageStructure are checked as SNS checks them', () => {
  assert.deepEqual(
    messageAttributes([
      { name: 's', dataType: 'String', stringValue: 'v', binaryValue: undefined },
      { name: 'n', dataType: 'Number.cents', stringValue: '-1.5e3', binaryValue: undefined },
      { name: 'l', dataType: 'String.Array', stringValue: '["a", 1, true, null]', binaryValue: undefined },
      { name: 'b', dataType: 'Binary', stringValue: undefined, binaryValue: 'AQID' },
    ]),
    {
      values: { s: 'v', n: '-1.5e3', l: ['a', '1', 'true', 'null'], b: 'AQID' },
      types: { s: 'String', n: 'Number.cents', l: 'String.Array', b: 'Binary' },
    },
  );
  for (const [a, why] of [
    [{ name: 'n', dataType: 'Number', stringValue: 'ten' }, /must be a number/],
    [{ name: 'x', dataType: 'Date', stringValue: '1' }, /DataType must be/],
    [{ name: 'AWS.x', dataType: 'String', stringValue: '1' }, /no AWS\./],
    [{ name: 'l', dataType: 'String.Array', stringValue: '[{"a":1}]' }, /JSON array/],
    [{ name: 'b', dataType: 'Binary' }, /BinaryValue/],
  ] as const) {
    assert.throws(
      () =>
        messageAttributes([
          {
            name: a.name,
            dataType: a.dataType,
            stringValue: 'stringValue' in a ? a.stringValue : undefined,
            binaryValue: undefined,
          },
        ]),
      why,
    );
  }
  assert.deepEqual(messageStructure(undefined, 'plain'), { body: 'plain', protocolBodies: null });
  assert.deepEqual(messageStructure('json', '{"default":"d","http":"h","lambda":"l"}'), {
    body: 'd',
    protocolBodies: { http: 'h', lambda: 'l', function: 'l' },
  });
  assert.throws(() => messageStructure('json', '{"http":"h"}'), /No default entry/);
  assert.throws(() => messageStructure('xml', 'x'), /only value is "json"/);
});

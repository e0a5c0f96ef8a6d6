import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attemptLogEntry, BodyStart, redactHeaders, RESPONSE_BODY_LIMIT } from '../../src/model/attempt-log.js';

test('attempt log: credentials, signatures and env-configured headers are redacted; the rest is kept', () => {
  const kept = redactHeaders(
    {
      Authorization: 'Bearer abc.def',
      'proxy-authorization': 'Basic dXNlcjpwYXNz',
      'webhook-signature': 'v1,abc= v1,def=',
      'X-Api-Key': 'k-123',
      'x-auth-token': 't',
      cookie: 'a=b',
      'set-cookie': ['s=1', 's=2'],
      'x-partner': 'from-env',
      'x-tenant': 'acme',
      'webhook-id': 'm-1',
      'x-empty': undefined,
    },
    new Set(['x-partner']),
  );
  assert.deepEqual(kept, {
    authorization: 'Bearer [redacted]',
    'proxy-authorization': 'Basic [redacted]',
    'webhook-signature': '[redacted]',
    'x-api-key': '[redacted]',
    'x-auth-token': '[redacted]',
    cookie: '[redacted]',
    'set-cookie': '[redacted]',
    'x-partner': '[redacted]',
    'x-tenant': 'acme',
    'webhook-id': 'm-1',
  });
  // A value without a scheme keeps nothing of itself.
  assert.equal(redactHeaders({ authorization: 'opaque' }).authorization, '[redacted]');
});

test('attempt log: a response cannot bloat it: at most 50 headers, values cut at 512 characters', () => {
  const many = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`x-h${i}`, 'v'.repeat(600)]));
  const kept = redactHeaders(many);
  assert.equal(Object.keys(kept).length, 50);
  assert.equal(kept['x-h0'], `${'v'.repeat(512)}…`);
});

test('attempt log: the first 1 KB of a body, whole characters only, NUL replaced', () => {
  const body = (chunks: Buffer[]) => {
    const start = new BodyStart();
    for (const chunk of chunks) start.add(chunk);
    return start.result();
  };
  const short = body([Buffer.from('ok\u0000')]);
  assert.deepEqual(short, { body: 'ok\ufffd', bodyTruncated: false });
  // 1023 ASCII bytes, then a 2-byte character across the limit: it is left out, not cut in half.
  const cut = body([Buffer.from('a'.repeat(RESPONSE_BODY_LIMIT - 1)), Buffer.from('éé')]);
  assert.equal(cut.body, 'a'.repeat(RESPONSE_BODY_LIMIT - 1));
  assert.equal(cut.bodyTruncated, true);
  const exact = body([Buffer.from('b'.repeat(RESPONSE_BODY_LIMIT))]);
  assert.deepEqual(exact, { body: 'b'.repeat(RESPONSE_BODY_LIMIT), bodyTruncated: false });
});

test('attempt log: an entry as the results statement takes it', () => {
  const [entry] = JSON.parse(
    attemptLogEntry({
      attempt: 2,
      state: 'pending',
      status: 503,
      error: 'HTTP 503',
      durationMs: 12.6,
      exchange: { request: { headers: { a: 'b' } } },
    }),
  );
  assert.deepEqual(
    { ...entry, at: undefined },
    {
      attempt: 2,
      at: undefined,
      outcome: 'failed',
      status: 503,
      error: 'HTTP 503',
      durationMs: 13,
      request: { headers: { a: 'b' } },
    },
  );
  assert.ok(Date.parse(entry.at));
  assert.equal(JSON.parse(attemptLogEntry({ attempt: 1, state: 'done' }))[0].outcome, 'delivered');
  assert.equal(JSON.parse(attemptLogEntry({ attempt: 3, state: 'dead' }))[0].outcome, 'dead');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failureRecordId, PublishedIds } from '../../src/model/published-ids.js';
import type { PublishedMessage } from '../../src/model/thread-protocol.js';

const message: Omit<PublishedMessage, 'id'> = {
  topic: 'orders',
  body: '{"n":1}',
  contentType: 'application/json',
  subject: null,
  attributes: { kind: 'a' },
  groupKey: null,
  dedupKey: null,
};
const INVOCATION = '6f1c1a52-0000-4000-8000-000000000001';

test('a run that publishes the same messages gets the same ids; repeats are told apart', () => {
  const first = new PublishedIds(INVOCATION, 'context');
  const again = new PublishedIds(INVOCATION, 'context');
  const ids = [first.next(message), first.next(message), first.next({ ...message, body: '{"n":2}' })];
  assert.equal(new Set(ids).size, 3);
  assert.deepEqual([again.next(message), again.next(message), again.next({ ...message, body: '{"n":2}' })], ids);
  assert.match(ids[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('an id names one message: any other part, invocation or way of publishing makes another', () => {
  const id = (m: typeof message, invocation = INVOCATION, via: 'context' | 'sdk' = 'context') =>
    new PublishedIds(invocation, via).next(m);
  const ids = [
    id(message),
    id(message, '6f1c1a52-0000-4000-8000-000000000002'),
    id(message, INVOCATION, 'sdk'),
    id({ ...message, topic: 'orders2' }),
    id({ ...message, subject: '' }),
    id({ ...message, subject: 'null' }),
    id({ ...message, attributes: { kind: 'b' } }),
    id({ ...message, groupKey: 'g' }),
    id({ ...message, contentType: 'text/plain' }),
    // The parts are length-prefixed: moving text from one part into the next is another message.
    id({ ...message, topic: 'order', contentType: `s${message.contentType}` }),
  ];
  assert.equal(new Set(ids).size, ids.length);
});

test('an invocation has one on-failure record id', () => {
  assert.equal(failureRecordId(INVOCATION), failureRecordId(INVOCATION));
  assert.notEqual(failureRecordId(INVOCATION), failureRecordId('6f1c1a52-0000-4000-8000-000000000002'));
});

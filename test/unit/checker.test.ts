import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertDeliveries, checkDeliveries } from '../support/checker.js';
import type { ReceivedRequest } from '../support/webhook-receiver.js';

// The fault suite's checker must itself catch what it is there to catch: these feed it request logs by hand.

/** A request of row `id`, version `v` (the FIFO scenario's key is "id:v"), and when its answer was written. */
function request(n: number, id: number, v: number, status: number, answeredAfterRequests?: number): ReceivedRequest {
  return {
    n,
    path: '/hook',
    headers: { 'webhook-id': `m-${id}-${v}` },
    body: '',
    json: { body: { key: { id }, after: { v } } },
    status,
    at: n,
    answeredAfterRequests,
  };
}

const keyOf = (r: ReceivedRequest) => `${r.json.body.key.id}:${r.json.body.after.v}`;
const order = {
  groupOf: (r: ReceivedRequest) => String(r.json.body.key.id),
  seqOf: (r: ReceivedRequest) => Number(r.json.body.after.v),
};
const committed = ['1:0', '1:1', '2:0'];

describe('FIFO order (strict)', () => {
  test('in order: each version requested only after the previous one was answered 2xx', () => {
    const requests = [
      request(1, 1, 0, 503, 1),
      request(2, 2, 0, 200, 2),
      request(3, 1, 0, 200, 3),
      request(4, 1, 1, 200, 4),
      request(5, 1, 0, 200, 5),
    ];
    const result = assertDeliveries({ committed, requests, keyOf, order });
    assert.equal(result.duplicates, 1, 'a late redelivery of version 0 is a duplicate, not a reordering');
  });

  test('version 1 requested while version 0 had no 2xx yet fails, though their first 2xx are in order', () => {
    // 0 fails, 1 is sent (and fails) before 0 is retried: the first 2xx per version are still 0 then 1.
    const requests = [
      request(1, 1, 0, 503, 1),
      request(2, 1, 1, 503, 2),
      request(3, 1, 0, 200, 3),
      request(4, 1, 1, 200, 4),
      request(5, 2, 0, 200, 5),
    ];
    const result = checkDeliveries({ committed, requests, keyOf, order });
    assert.equal(result.ok, false);
    assert.deepEqual(result.orderViolations, ['group 1: 1 requested (request 2) before 0 was answered 2xx']);
  });

  test("version 1 requested while version 0's 2xx was still being written fails", () => {
    // Request 2 arrived before the answer to request 1 (written after two requests had arrived).
    const requests = [request(1, 1, 0, 200, 2), request(2, 1, 1, 200, 2), request(3, 2, 0, 200, 3)];
    assert.throws(
      () => assertDeliveries({ committed, requests, keyOf, order }),
      /out of order 1 \(group 1: 1 requested \(request 2\) before 0 was answered 2xx\)/,
    );
  });
});

test('nothing committed fails the check: the scenario did not run', () => {
  assert.throws(() => assertDeliveries({ committed: [], requests: [] }), /nothing committed/);
});

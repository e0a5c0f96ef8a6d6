import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validTraceparent } from '../../src/model/trace-context.js';

test('W3C traceparent: valid ones pass (normalised), anything else is dropped', () => {
  const ok = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(validTraceparent(ok), ok);
  assert.equal(validTraceparent(` ${ok} `), ok);
  // A later version may append fields; a version-00 reader keeps the four it knows.
  assert.equal(
    validTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'),
    '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  );
  for (const bad of [
    null,
    undefined,
    '',
    'not-a-trace',
    `${ok}-extra`, // version 00 has exactly four fields
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff is invalid
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero parent id
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // uppercase
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // short trace id
  ]) {
    assert.equal(validTraceparent(bad), null, String(bad));
  }
});

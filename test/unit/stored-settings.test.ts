import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStoredSettings } from '../../src/config/stored-settings.js';

test('stored settings: missing keys get the config defaults; other keys are kept', () => {
  const parsed = parseStoredSettings('s', { headers: { 'x-key': 'v' }, options: { stream: 'stdout' } });
  assert.ok(parsed.ok);
  assert.equal(parsed.settings.format, 'envelope');
  assert.equal(parsed.settings.maxConcurrency, 32);
  assert.equal(parsed.settings.deliveryPolicy.maxAttempts, 10);
  assert.deepEqual(parsed.settings.options, { stream: 'stdout' });
  assert.ok(parseStoredSettings('s', null).ok, 'no settings at all: all defaults');
});

test('stored settings: a wrong key is an error naming the subscription and the key, never the value', () => {
  const parsed = parseStoredSettings('orders-hook', { format: 'xml', headers: { authorization: 42 }, maxConcurrency: 0 });
  assert.equal(parsed.ok, false);
  const { error } = parsed as { error: string };
  assert.match(error, /^subscription orders-hook has invalid settings in the database/);
  assert.match(error, /settings\.format: /);
  assert.match(error, /settings\.headers\.authorization: /);
  assert.match(error, /settings\.maxConcurrency: /);
  assert.doesNotMatch(error, /42/);
  assert.equal(parseStoredSettings('s', { disableAfter: { failingFor: 'soon', deadDeliveries: null } }).ok, false);
  assert.ok(parseStoredSettings('s', { disableAfter: { failingFor: 432_000_000, deadDeliveries: null } }).ok);
});

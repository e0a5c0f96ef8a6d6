import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rowKeyForms } from '../../src/admin/inspect/delivery-search.js';
import { RowcastError } from '../../src/model/errors.js';

test('a row key is looked up in every form it may be stored in', () => {
  // int keys are JSON numbers, bigint and numeric keys strings: id=42 is either.
  assert.deepEqual(rowKeyForms('id=42'), ['{"id":"42"}', '{"id":42}', 'id=42']);
  assert.deepEqual(rowKeyForms(' sku=ab-1 '), ['{"sku":"ab-1"}', 'sku=ab-1']);
  assert.deepEqual(rowKeyForms('tenant=a,id=7'), ['{"tenant":"a","id":"7"}', '{"tenant":"a","id":7}', 'tenant=a,id=7']);
  assert.deepEqual(rowKeyForms('{"id": 42}'), ['{"id":42}', '{"id":"42"}', '{"id": 42}']);
  assert.deepEqual(rowKeyForms('{"id": "42"}'), ['{"id":"42"}', '{"id":42}', '{"id": "42"}']);
  assert.deepEqual(rowKeyForms('active=true'), ['{"active":"true"}', '{"active":true}', 'active=true']);
});

test('a row key that names no column, is not JSON, or is too wide is refused with the fix', () => {
  const refused = (input: string, message: RegExp) =>
    assert.throws(
      () => rowKeyForms(input),
      (err: unknown) => err instanceof RowcastError && message.test(err.message),
    );
  refused('42', /names no column; write column=value pairs separated by commas \(id=42, tenant=a,id=42\) or JSON/);
  refused('  ', /rowKey is empty/);
  refused('{"id": ', /rowKey is not valid JSON/);
  refused('[1]', /names no column/);
  refused('{}', /must be a JSON object of the primary-key columns/);
  refused('a=1,b=2,c=3,d=4,e=5,f=6,g=7', /too many columns/);
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compileFilterPolicy,
  FILTER_POLICY_LIMITS,
  type FilterMessage,
  type FilterPolicyScope,
  matchesFilterPolicy,
  validateFilterPolicy,
} from '../../src/model/filter-policy/filter-policy.js';

const A: FilterPolicyScope = 'MessageAttributes';
const B: FilterPolicyScope = 'MessageBody';

interface MatchCase {
  name: string;
  policy: Record<string, unknown>;
  scope: FilterPolicyScope;
  message: FilterMessage;
  expected: boolean;
}

const attrs = (attributes: FilterMessage['attributes']): FilterMessage => ({ attributes });
const body = (b: unknown): FilterMessage => ({ attributes: {}, body: b });

/** The SNS documentation's example message, as attributes and as a JSON body. */
const exampleAttributes = attrs({
  customer_interests: ['soccer', 'rugby', 'hockey'],
  store: 'example_corp',
  event: 'order_placed',
  price_usd: '210.75',
});
const exampleBody = body({
  customer_interests: ['soccer', 'rugby', 'hockey'],
  store: 'example_corp',
  event: 'order_placed',
  price_usd: 210.75,
});
const acceptsExample = {
  store: ['example_corp'],
  event: [{ 'anything-but': 'order_cancelled' }],
  customer_interests: ['rugby', 'football', 'baseball'],
  price_usd: [{ numeric: ['>=', 100] }],
};
const rejectsExample = {
  store: ['example_corp'],
  event: ['order_cancelled'],
  encrypted: [false],
  customer_interests: ['basketball', 'baseball'],
};

const andPolicy = { customer_interests: ['rugby'], price_usd: [{ numeric: ['>', 100] }] };
const orValues = { customer_interests: ['rugby', 'football', 'baseball'] };
const standardOr = {
  source: ['aws.cloudwatch'],
  $or: [{ metricName: ['CPUUtilization'] }, { namespace: ['AWS/EC2'] }],
};
const nestedOr = {
  source: ['aws.cloudwatch'],
  $or: [
    { metricName: ['CPUUtilization', 'ReadLatency'] },
    { metricType: ['MetricType'], $or: [{ metricId: [1234, 4321] }, { spaceId: [1000, 2000, 3000] }] },
  ],
};
const storeExists = { store: [{ exists: true }] };
const storeMissing = { store: [{ exists: false }] };
const exact = { customer_interests: ['rugby', 'tennis'] };
const anythingBut = { customer_interests: [{ 'anything-but': ['rugby', 'tennis'] }] };
const anythingButPrefix = { event: [{ 'anything-but': { prefix: 'order-' } }] };
const ignoreCase = { customer_interests: [{ 'equals-ignore-case': 'tennis' }] };
const cidr = { source_ip: [{ cidr: '10.0.0.0/24' }] };
const cidr6 = { source_ip: [{ cidr: '2001:db8::/32' }] };
const prefix = { customer_interests: [{ prefix: 'bas' }] };
const suffix = { customer_interests: [{ suffix: 'ball' }] };
const numericEquals = { price_usd: [{ numeric: ['=', 301.5] }] };
const numericAnythingBut = { price: [{ 'anything-but': [100, 500] }] };
const negative = { price_usd: [{ numeric: ['<', 0] }] };
const upTo150 = { price_usd: [{ numeric: ['>', 0, '<=', 150] }] };
const nestedBody = {
  key_a: { key_b: { key_c: ['value_one', 'value_two', 'value_three', 'value_four'] } },
  key_d: { key_e: ['value_one', 'value_two', 'value_three'] },
};

const matchCases: MatchCase[] = [
  // Example filter policies (the customer transaction message)
  {
    name: 'example: accepting policy, attributes',
    policy: acceptsExample,
    scope: A,
    message: exampleAttributes,
    expected: true,
  },
  {
    name: 'example: rejecting policy, attributes',
    policy: rejectsExample,
    scope: A,
    message: exampleAttributes,
    expected: false,
  },
  { name: 'example: accepting policy, body', policy: acceptsExample, scope: B, message: exampleBody, expected: true },
  { name: 'example: rejecting policy, body', policy: rejectsExample, scope: B, message: exampleBody, expected: false },
  {
    name: 'example: accepting policy, cancelled order',
    policy: acceptsExample,
    scope: A,
    message: attrs({ ...exampleAttributes.attributes, event: 'order_cancelled' }),
    expected: false,
  },
  {
    name: 'example: accepting policy, price below 100',
    policy: acceptsExample,
    scope: A,
    message: attrs({ ...exampleAttributes.attributes, price_usd: '99.99' }),
    expected: false,
  },

  // AND / OR logic
  {
    name: 'AND: rugby and price > 100',
    policy: andPolicy,
    scope: A,
    message: attrs({ customer_interests: 'rugby', price_usd: '101' }),
    expected: true,
  },
  {
    name: 'AND: rugby but price 100',
    policy: andPolicy,
    scope: A,
    message: attrs({ customer_interests: 'rugby', price_usd: '100' }),
    expected: false,
  },
  {
    name: 'AND: price but not rugby',
    policy: andPolicy,
    scope: A,
    message: attrs({ customer_interests: 'tennis', price_usd: '500' }),
    expected: false,
  },
  {
    name: 'AND: price missing',
    policy: andPolicy,
    scope: A,
    message: attrs({ customer_interests: 'rugby' }),
    expected: false,
  },
  {
    name: 'AND: body',
    policy: andPolicy,
    scope: B,
    message: body({ customer_interests: 'rugby', price_usd: 150 }),
    expected: true,
  },
  {
    name: 'OR values: football',
    policy: orValues,
    scope: A,
    message: attrs({ customer_interests: 'football' }),
    expected: true,
  },
  {
    name: 'OR values: tennis',
    policy: orValues,
    scope: A,
    message: attrs({ customer_interests: 'tennis' }),
    expected: false,
  },
  {
    name: 'OR values: other attributes are ignored',
    policy: orValues,
    scope: A,
    message: attrs({ customer_interests: 'baseball', unrelated: 'x' }),
    expected: true,
  },

  // $or
  {
    name: '$or: source and metricName',
    policy: standardOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricName: 'CPUUtilization' }),
    expected: true,
  },
  {
    name: '$or: source and namespace',
    policy: standardOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', namespace: 'AWS/EC2' }),
    expected: true,
  },
  {
    name: '$or: source alone',
    policy: standardOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch' }),
    expected: false,
  },
  {
    name: '$or: both branches but no source',
    policy: standardOr,
    scope: A,
    message: attrs({ metricName: 'CPUUtilization', namespace: 'AWS/EC2' }),
    expected: false,
  },
  {
    name: '$or: body',
    policy: standardOr,
    scope: B,
    message: body({ source: 'aws.cloudwatch', namespace: 'AWS/EC2' }),
    expected: true,
  },
  {
    name: 'nested $or: metricName',
    policy: nestedOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricName: 'ReadLatency' }),
    expected: true,
  },
  {
    name: 'nested $or: metricType and metricId',
    policy: nestedOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricType: 'MetricType', metricId: '1234' }),
    expected: true,
  },
  {
    name: 'nested $or: metricType and spaceId',
    policy: nestedOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricType: 'MetricType', spaceId: '2000' }),
    expected: true,
  },
  {
    name: 'nested $or: metricType alone',
    policy: nestedOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricType: 'MetricType' }),
    expected: false,
  },
  {
    name: 'nested $or: metricId without metricType',
    policy: nestedOr,
    scope: A,
    message: attrs({ source: 'aws.cloudwatch', metricId: '4321' }),
    expected: false,
  },
  {
    name: 'nested $or: body numbers',
    policy: nestedOr,
    scope: B,
    message: body({ source: 'aws.cloudwatch', metricType: 'MetricType', spaceId: 3000 }),
    expected: true,
  },

  // Key matching (exists)
  {
    name: 'exists true: present',
    policy: storeExists,
    scope: A,
    message: attrs({ store: 'fans', customer_interests: ['baseball', 'basketball'] }),
    expected: true,
  },
  {
    name: 'exists true: absent',
    policy: storeExists,
    scope: A,
    message: attrs({ customer_interests: ['baseball', 'basketball'] }),
    expected: false,
  },
  {
    name: 'exists true: undefined counts as absent',
    policy: storeExists,
    scope: A,
    message: attrs({ store: undefined }),
    expected: false,
  },
  { name: 'exists false: present', policy: storeMissing, scope: A, message: attrs({ store: 'fans' }), expected: false },
  {
    name: 'exists false: absent',
    policy: storeMissing,
    scope: A,
    message: attrs({ customer_interests: ['baseball', 'basketball'] }),
    expected: true,
  },
  {
    name: 'exists true: body',
    policy: storeExists,
    scope: B,
    message: body({ store: 'fans', customer_interests: ['baseball', 'basketball'] }),
    expected: true,
  },
  {
    name: 'exists false: body without store',
    policy: storeMissing,
    scope: B,
    message: body({ customer_interests: ['baseball', 'basketball'] }),
    expected: true,
  },
  {
    name: 'exists true: a null body value is a value',
    policy: storeExists,
    scope: B,
    message: body({ store: null }),
    expected: true,
  },
  {
    name: 'exists true: an object is not a leaf',
    policy: storeExists,
    scope: B,
    message: body({ store: { name: 'fans' } }),
    expected: false,
  },
  {
    name: 'exists true: an empty array has no value',
    policy: storeExists,
    scope: B,
    message: body({ store: [] }),
    expected: false,
  },

  // String value matching
  { name: 'exact: rugby', policy: exact, scope: A, message: attrs({ customer_interests: 'rugby' }), expected: true },
  {
    name: 'exact: String.Array with tennis',
    policy: exact,
    scope: A,
    message: attrs({ customer_interests: ['rugby', 'tennis'] }),
    expected: true,
  },
  {
    name: 'exact: baseball',
    policy: exact,
    scope: A,
    message: attrs({ customer_interests: 'baseball' }),
    expected: false,
  },
  {
    name: 'exact: String.Array of baseball',
    policy: exact,
    scope: A,
    message: attrs({ customer_interests: ['baseball'] }),
    expected: false,
  },
  {
    name: 'exact: case-sensitive',
    policy: exact,
    scope: A,
    message: attrs({ customer_interests: 'Rugby' }),
    expected: false,
  },
  { name: 'exact: body', policy: exact, scope: B, message: body({ customer_interests: 'tennis' }), expected: true },
  {
    name: 'exact: body baseball',
    policy: exact,
    scope: B,
    message: body({ customer_interests: 'baseball' }),
    expected: false,
  },
  {
    name: 'anything-but: baseball',
    policy: anythingBut,
    scope: A,
    message: attrs({ customer_interests: 'baseball' }),
    expected: true,
  },
  {
    name: 'anything-but: football',
    policy: anythingBut,
    scope: A,
    message: attrs({ customer_interests: 'football' }),
    expected: true,
  },
  {
    name: 'anything-but: array with a value not listed',
    policy: anythingBut,
    scope: A,
    message: attrs({ customer_interests: ['rugby', 'baseball'] }),
    expected: true,
  },
  {
    name: 'anything-but: rugby',
    policy: anythingBut,
    scope: A,
    message: attrs({ customer_interests: 'rugby' }),
    expected: false,
  },
  {
    name: 'anything-but: missing key does not match',
    policy: anythingBut,
    scope: A,
    message: attrs({}),
    expected: false,
  },
  {
    name: 'anything-but: body array with a value not listed',
    policy: anythingBut,
    scope: B,
    message: body({ customer_interests: ['rugby', 'baseball'] }),
    expected: true,
  },
  {
    name: 'anything-but: body [rugby]',
    policy: anythingBut,
    scope: B,
    message: body({ customer_interests: ['rugby'] }),
    expected: false,
  },
  {
    name: 'anything-but: combined with exists false',
    policy: { store: [{ 'anything-but': 'x' }, { exists: false }] },
    scope: A,
    message: attrs({}),
    expected: true,
  },
  {
    name: 'anything-but prefix: data-entry',
    policy: anythingButPrefix,
    scope: A,
    message: attrs({ event: 'data-entry' }),
    expected: true,
  },
  {
    name: 'anything-but prefix: order_number',
    policy: anythingButPrefix,
    scope: A,
    message: attrs({ event: 'order_number' }),
    expected: true,
  },
  {
    name: 'anything-but prefix: order-cancelled',
    policy: anythingButPrefix,
    scope: A,
    message: attrs({ event: 'order-cancelled' }),
    expected: false,
  },
  {
    name: 'anything-but prefix: body',
    policy: anythingButPrefix,
    scope: B,
    message: body({ event: 'order-cancelled' }),
    expected: false,
  },
  {
    name: 'equals-ignore-case: TENNIS',
    policy: ignoreCase,
    scope: A,
    message: attrs({ customer_interests: 'TENNIS' }),
    expected: true,
  },
  {
    name: 'equals-ignore-case: Tennis',
    policy: ignoreCase,
    scope: B,
    message: body({ customer_interests: 'Tennis' }),
    expected: true,
  },
  {
    name: 'equals-ignore-case: baseball',
    policy: ignoreCase,
    scope: A,
    message: attrs({ customer_interests: 'baseball' }),
    expected: false,
  },
  { name: 'cidr: 10.0.0.0', policy: cidr, scope: A, message: attrs({ source_ip: '10.0.0.0' }), expected: true },
  { name: 'cidr: 10.0.0.255', policy: cidr, scope: A, message: attrs({ source_ip: '10.0.0.255' }), expected: true },
  { name: 'cidr: 10.1.1.0', policy: cidr, scope: A, message: attrs({ source_ip: '10.1.1.0' }), expected: false },
  { name: 'cidr: body', policy: cidr, scope: B, message: body({ source_ip: '10.0.0.255' }), expected: true },
  { name: 'cidr: not an address', policy: cidr, scope: A, message: attrs({ source_ip: 'localhost' }), expected: false },
  {
    name: 'cidr: IPv6 inside',
    policy: cidr6,
    scope: A,
    message: attrs({ source_ip: '2001:db8:ffff::1' }),
    expected: true,
  },
  {
    name: 'cidr: IPv6 outside',
    policy: cidr6,
    scope: A,
    message: attrs({ source_ip: '2001:db9::1' }),
    expected: false,
  },
  {
    name: 'cidr: IPv4 address, IPv6 network',
    policy: cidr6,
    scope: A,
    message: attrs({ source_ip: '10.0.0.1' }),
    expected: false,
  },
  {
    name: 'cidr: embedded IPv4 in IPv6',
    policy: { ip: [{ cidr: '::ffff:0:0/96' }] },
    scope: A,
    message: attrs({ ip: '::ffff:192.0.2.1' }),
    expected: true,
  },
  {
    name: 'prefix: baseball',
    policy: prefix,
    scope: A,
    message: attrs({ customer_interests: 'baseball' }),
    expected: true,
  },
  {
    name: 'prefix: basketball',
    policy: prefix,
    scope: B,
    message: body({ customer_interests: 'basketball' }),
    expected: true,
  },
  { name: 'prefix: rugby', policy: prefix, scope: A, message: attrs({ customer_interests: 'rugby' }), expected: false },
  {
    name: 'suffix: baseball',
    policy: suffix,
    scope: A,
    message: attrs({ customer_interests: 'baseball' }),
    expected: true,
  },
  {
    name: 'suffix: basketball',
    policy: suffix,
    scope: B,
    message: body({ customer_interests: 'basketball' }),
    expected: true,
  },
  { name: 'suffix: rugby', policy: suffix, scope: A, message: attrs({ customer_interests: 'rugby' }), expected: false },

  // Numeric value matching
  { name: 'numeric =: 301.5', policy: numericEquals, scope: A, message: attrs({ price_usd: '301.5' }), expected: true },
  {
    name: 'numeric =: 3.015e2',
    policy: numericEquals,
    scope: A,
    message: attrs({ price_usd: '3.015e2' }),
    expected: true,
  },
  {
    name: 'numeric =: Number attribute',
    policy: numericEquals,
    scope: A,
    message: attrs({ price_usd: 301.5 }),
    expected: true,
  },
  {
    name: 'numeric =: body 3.015e2',
    policy: numericEquals,
    scope: B,
    message: body({ price_usd: 3.015e2 }),
    expected: true,
  },
  { name: 'numeric =: 301', policy: numericEquals, scope: A, message: attrs({ price_usd: '301' }), expected: false },
  {
    name: 'numeric: a body string is not a number',
    policy: numericEquals,
    scope: B,
    message: body({ price_usd: '301.5' }),
    expected: false,
  },
  {
    name: 'numeric: a non-numeric attribute',
    policy: numericEquals,
    scope: A,
    message: attrs({ price_usd: 'cheap' }),
    expected: false,
  },
  {
    name: 'numeric anything-but: 101',
    policy: numericAnythingBut,
    scope: A,
    message: attrs({ price: '101' }),
    expected: true,
  },
  {
    name: 'numeric anything-but: 100.1',
    policy: numericAnythingBut,
    scope: B,
    message: body({ price: 100.1 }),
    expected: true,
  },
  {
    name: 'numeric anything-but: [100, 50]',
    policy: numericAnythingBut,
    scope: B,
    message: body({ price: [100, 50] }),
    expected: true,
  },
  {
    name: 'numeric anything-but: 100',
    policy: numericAnythingBut,
    scope: A,
    message: attrs({ price: '100' }),
    expected: false,
  },
  {
    name: 'numeric anything-but: 100.0 is 100',
    policy: numericAnythingBut,
    scope: A,
    message: attrs({ price: '100.0' }),
    expected: false,
  },
  {
    name: 'numeric anything-but: body 100',
    policy: numericAnythingBut,
    scope: B,
    message: body({ price: 100 }),
    expected: false,
  },
  { name: 'numeric <0: negative', policy: negative, scope: A, message: attrs({ price_usd: '-0.5' }), expected: true },
  { name: 'numeric <0: zero', policy: negative, scope: A, message: attrs({ price_usd: '0' }), expected: false },
  {
    name: 'numeric range: 150 included',
    policy: upTo150,
    scope: A,
    message: attrs({ price_usd: '150' }),
    expected: true,
  },
  { name: 'numeric range: 0.00001', policy: upTo150, scope: B, message: body({ price_usd: 0.00001 }), expected: true },
  { name: 'numeric range: 0 excluded', policy: upTo150, scope: A, message: attrs({ price_usd: '0' }), expected: false },
  {
    name: 'numeric range: 150.00001',
    policy: upTo150,
    scope: A,
    message: attrs({ price_usd: '150.00001' }),
    expected: false,
  },
  {
    name: 'numeric: any array element in range',
    policy: upTo150,
    scope: B,
    message: body({ price_usd: [500, 20] }),
    expected: true,
  },
  {
    name: 'exact number matches a numeric attribute string',
    policy: { n: [5] },
    scope: A,
    message: attrs({ n: '5.0' }),
    expected: true,
  },
  {
    name: 'exact number vs a non-numeric string',
    policy: { n: [5] },
    scope: A,
    message: attrs({ n: 'five' }),
    expected: false,
  },
  { name: 'exact number vs a body string', policy: { n: [5] }, scope: B, message: body({ n: '5' }), expected: false },
  { name: 'exact string vs a body number', policy: { n: ['5'] }, scope: B, message: body({ n: 5 }), expected: false },
  {
    name: 'boolean vs attribute "true"',
    policy: { flag: [true] },
    scope: A,
    message: attrs({ flag: 'true' }),
    expected: true,
  },
  { name: 'boolean vs body true', policy: { flag: [true] }, scope: B, message: body({ flag: true }), expected: true },
  {
    name: 'boolean vs body "true"',
    policy: { flag: [true] },
    scope: B,
    message: body({ flag: 'true' }),
    expected: false,
  },
  { name: 'null vs body null', policy: { a: [null] }, scope: B, message: body({ a: null }), expected: true },
  { name: 'null vs missing body key', policy: { a: [null] }, scope: B, message: body({}), expected: false },

  // Nested body policies
  {
    name: 'nested: both nested keys match',
    policy: nestedBody,
    scope: B,
    message: body({ key_a: { key_b: { key_c: 'value_two' } }, key_d: { key_e: 'value_three' } }),
    expected: true,
  },
  {
    name: 'nested: a nested value differs',
    policy: nestedBody,
    scope: B,
    message: body({ key_a: { key_b: { key_c: 'value_five' } }, key_d: { key_e: 'value_one' } }),
    expected: false,
  },
  {
    name: 'nested: the same name at the wrong level',
    policy: nestedBody,
    scope: B,
    message: body({ key_c: 'value_one', key_e: 'value_one' }),
    expected: false,
  },
  {
    name: 'nested: arrays of objects, one element matches',
    policy: { store: { name: ['example_corp'] } },
    scope: B,
    message: body({ store: [{ name: 'other' }, { name: 'example_corp' }] }),
    expected: true,
  },
  {
    name: 'nested: keys must match within the same array element',
    policy: { a: { b: [1], c: [2] } },
    scope: B,
    message: body({ a: [{ b: 1 }, { c: 2 }] }),
    expected: false,
  },
  {
    name: 'nested: both keys in one array element',
    policy: { a: { b: [1], c: [2] } },
    scope: B,
    message: body({
      a: [
        { b: 3, c: 3 },
        { b: 1, c: 2 },
      ],
    }),
    expected: true,
  },
  {
    name: 'nested: exists false under a missing parent',
    policy: { a: { b: [{ exists: false }] } },
    scope: B,
    message: body({}),
    expected: true,
  },
  {
    name: 'nested: $or inside a nested object',
    policy: { order: { $or: [{ state: ['paid'] }, { total: [{ numeric: ['>', 1000] }] }] } },
    scope: B,
    message: body({ order: { state: 'new', total: 5000 } }),
    expected: true,
  },
  {
    name: 'nested: nested arrays flatten',
    policy: { tags: ['b'] },
    scope: B,
    message: body({ tags: [['a'], [['b']]] }),
    expected: true,
  },
  { name: 'body: not a JSON object', policy: exact, scope: B, message: body(undefined), expected: false },
  {
    name: 'body: a JSON array is not an object',
    policy: exact,
    scope: B,
    message: body([{ customer_interests: 'rugby' }]),
    expected: false,
  },
  {
    name: 'attributes scope ignores the body',
    policy: exact,
    scope: A,
    message: { attributes: {}, body: { customer_interests: 'rugby' } },
    expected: false,
  },
  {
    name: 'body scope ignores attributes',
    policy: exact,
    scope: B,
    message: { attributes: { customer_interests: 'rugby' }, body: {} },
    expected: false,
  },
  { name: 'empty policy matches everything', policy: {}, scope: A, message: attrs({}), expected: true },
];

describe('filter policy matching (SNS documentation examples)', () => {
  for (const c of matchCases) {
    test(`${c.scope === A ? 'attributes' : 'body'} — ${c.name}`, () => {
      assert.deepEqual(validateFilterPolicy(c.policy, c.scope), [], 'the case uses a valid policy');
      assert.equal(matchesFilterPolicy(c.policy, c.message, c.scope), c.expected);
      assert.equal(compileFilterPolicy(c.policy, c.scope)(c.message), c.expected, 'compiled agrees');
    });
  }

  test('an invalid policy never throws and never lets a message through by accident', () => {
    assert.equal(matchesFilterPolicy({ store: [{ prefixx: 'ex' }] }, attrs({ store: 'example_corp' }), A), false);
    assert.equal(matchesFilterPolicy({ store: 'example_corp' }, attrs({ store: 'example_corp' }), A), false);
    assert.equal(matchesFilterPolicy({ store: { name: ['x'] } }, attrs({ store: 'x' }), A), false);
    assert.equal(matchesFilterPolicy({ n: [{ numeric: ['>'] }] }, attrs({ n: '1' }), A), false);
    let deep: Record<string, unknown> = { leaf: ['x'] };
    let message: unknown = { leaf: 'x' };
    for (let i = 0; i < 5000; i++) [deep, message] = [{ n: deep }, { n: message }];
    assert.equal(matchesFilterPolicy(deep, body(message), B), false);
  });

  test('a deeply nested body does not overflow the stack', () => {
    let deep: unknown = ['b'];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.equal(matchesFilterPolicy({ tags: ['b'] }, body({ tags: deep }), B), true);
  });
});

interface ProblemCase {
  name: string;
  policy: unknown;
  scope: FilterPolicyScope;
  /** Each must appear in some problem (the first, the path, normally). */
  expect: (string | RegExp)[];
}

const many = (n: number, p = 'v') => Array.from({ length: n }, (_, i) => `${p}${i}`);

const problemCases: ProblemCase[] = [
  { name: 'not an object: array', policy: [], scope: A, expect: ['must be a JSON object'] },
  { name: 'not an object: null', policy: null, scope: A, expect: ['must be a JSON object'] },
  { name: 'not an object: JSON in a string', policy: '{"a":["b"]}', scope: A, expect: ['not as a string of JSON'] },
  {
    name: 'non-array leaf',
    policy: { store: 'example_corp' },
    scope: A,
    expect: [/^store: must be an array of conditions.*"store": \["example_corp"\]/],
  },
  {
    name: 'non-array leaf: number',
    policy: { store: { price: 5 } },
    scope: B,
    expect: [/^store\.price: must be an array/],
  },
  {
    name: 'operator without its array',
    policy: { store: { prefix: 'ex' } },
    scope: A,
    expect: [/^store: conditions go in an array: write "store": \[\{"prefix":"ex"\}\]/],
  },
  {
    name: 'nested policy with MessageAttributes',
    policy: { store: { name: ['x'] } },
    scope: A,
    expect: [/^store: nested policies only work with filterPolicyScope MessageBody/],
  },
  { name: 'empty nested object', policy: { store: {} }, scope: B, expect: [/^store: an empty object/] },
  {
    name: 'empty condition array',
    policy: { store: [] },
    scope: A,
    expect: [/^store: an empty array matches nothing/],
  },
  {
    name: 'array inside the condition array',
    policy: { store: [['a', 'b']] },
    scope: A,
    expect: [/^store: a condition can't be an array/],
  },
  {
    name: 'null with MessageAttributes',
    policy: { store: [null] },
    scope: A,
    expect: [/^store: null never matches a message attribute.*exists": false/],
  },
  {
    name: 'unknown operator',
    policy: { store: [{ prefixx: 'a' }] },
    scope: A,
    expect: [/^store: unknown operator "prefixx" \(did you mean "prefix"\?\)/],
  },
  {
    name: 'wildcard is EventBridge',
    policy: { file: [{ wildcard: '*.png' }] },
    scope: B,
    expect: [/^file: wildcard is not an SNS filter operator/],
  },
  {
    name: 'two operators in one object',
    policy: { store: [{ prefix: 'a', suffix: 'b' }] },
    scope: A,
    expect: [/^store: a condition object holds exactly one operator.*prefix, suffix/],
  },
  {
    name: 'empty condition object',
    policy: { store: [{}] },
    scope: A,
    expect: [/^store: an empty object is not a condition/],
  },
  {
    name: 'prefix needs a string',
    policy: { store: [{ prefix: 5 }] },
    scope: A,
    expect: [/^store: prefix needs a string/],
  },
  {
    name: 'suffix needs a string',
    policy: { store: [{ suffix: null }] },
    scope: A,
    expect: [/^store: suffix needs a string/],
  },
  {
    name: 'equals-ignore-case needs a string',
    policy: { store: [{ 'equals-ignore-case': ['a'] }] },
    scope: A,
    expect: [/^store: equals-ignore-case needs a string/],
  },
  {
    name: 'exists needs a boolean',
    policy: { store: [{ exists: 'true' }] },
    scope: A,
    expect: [/^store: exists needs true or false/],
  },
  {
    name: 'numeric: odd length',
    policy: { store: { price: [{ numeric: ['>'] }] } },
    scope: B,
    expect: [/^store\.price: numeric needs pairs of operator and number/],
  },
  {
    name: 'numeric: number first',
    policy: { price: [{ numeric: [100, '>'] }] },
    scope: A,
    expect: [/^price: numeric needs pairs of operator and number/],
  },
  {
    name: 'numeric: not an array',
    policy: { price: [{ numeric: 100 }] },
    scope: A,
    expect: [/^price: numeric needs pairs/],
  },
  {
    name: 'numeric: unknown operator',
    policy: { price: [{ numeric: ['=>', 100] }] },
    scope: A,
    expect: [/^price: numeric operator "=>" is not one of =, <, <=, >, >=/],
  },
  {
    name: 'numeric: range upper bound first',
    policy: { price: [{ numeric: ['<', 100, '>', 0] }] },
    scope: A,
    expect: [/^price: numeric takes one comparison, or a range/],
  },
  {
    name: 'numeric: three comparisons',
    policy: { price: [{ numeric: ['>', 0, '<', 10, '=', 5] }] },
    scope: A,
    expect: [/^price: numeric takes one comparison/],
  },
  {
    name: 'numeric: empty range',
    policy: { price: [{ numeric: ['>', 10, '<', 5] }] },
    scope: A,
    expect: [/^price: numeric range .* is empty/],
  },
  {
    name: 'numeric: beyond a billion',
    policy: { price: [{ numeric: ['<', 1e10] }] },
    scope: A,
    expect: [/^price: numbers must lie between -1000000000 and 1000000000 with at most 5 digits/],
  },
  {
    name: 'numeric: six decimals',
    policy: { price: [{ numeric: ['=', 0.000001] }] },
    scope: A,
    expect: [/^price: numbers must lie between/],
  },
  {
    name: 'exact number beyond a billion',
    policy: { price: [2e9] },
    scope: B,
    expect: [/^price: numbers must lie between/],
  },
  {
    name: 'cidr: no prefix length',
    policy: { ip: [{ cidr: '10.0.0.0' }] },
    scope: A,
    expect: [/^ip: cidr needs an IPv4 or IPv6 network/],
  },
  {
    name: 'cidr: prefix length too long',
    policy: { ip: [{ cidr: '10.0.0.0/33' }] },
    scope: A,
    expect: [/^ip: cidr needs/],
  },
  { name: 'cidr: bad octet', policy: { ip: [{ cidr: '300.0.0.0/8' }] }, scope: A, expect: [/^ip: cidr needs/] },
  {
    name: 'cidr: IPv6 prefix length too long',
    policy: { ip: [{ cidr: '2001:db8::/129' }] },
    scope: A,
    expect: [/^ip: cidr needs/],
  },
  { name: 'cidr: two "::"', policy: { ip: [{ cidr: '2001::db8::/32' }] }, scope: A, expect: [/^ip: cidr needs/] },
  { name: 'cidr: not a string', policy: { ip: [{ cidr: 10 }] }, scope: A, expect: [/^ip: cidr needs/] },
  {
    name: 'anything-but: suffix is not SNS',
    policy: { file: [{ 'anything-but': { suffix: '.png' } }] },
    scope: A,
    expect: [/^file: SNS supports only \{"prefix": …\} inside anything-but, not suffix/],
  },
  {
    name: 'anything-but: wildcard is not SNS',
    policy: { file: [{ 'anything-but': { wildcard: '*/lib/*' } }] },
    scope: B,
    expect: [/^file: SNS supports only .* not wildcard/],
  },
  {
    name: 'anything-but: empty list',
    policy: { a: [{ 'anything-but': [] }] },
    scope: A,
    expect: [/^a: anything-but needs .* an empty list excludes nothing/],
  },
  {
    name: 'anything-but: an object in the list',
    policy: { a: [{ 'anything-but': [{ prefix: 'x' }] }] },
    scope: A,
    expect: [/^a: anything-but needs/],
  },
  {
    name: 'anything-but: boolean',
    policy: { a: [{ 'anything-but': true }] },
    scope: A,
    expect: [/^a: anything-but needs/],
  },
  {
    name: 'anything-but: empty prefix',
    policy: { a: [{ 'anything-but': { prefix: '' } }] },
    scope: A,
    expect: [/^a: anything-but's prefix needs a non-empty string/],
  },
  {
    name: '$or: a single branch',
    policy: { $or: [{ a: ['x'] }] },
    scope: A,
    expect: [/^\$or: "\$or" needs an array of at least 2 sub-policies/],
  },
  { name: '$or: not an array', policy: { $or: { a: ['x'] } }, scope: A, expect: [/^\$or: "\$or" needs an array/] },
  {
    name: '$or: reserved keywords (SNS docs example)',
    policy: { $or: [{ numeric: 123 }, { prefix: 'abc' }] },
    scope: A,
    expect: [/^\$or\[0\]: "numeric" is an operator, not a key/, /^\$or\[1\]: "prefix" is an operator/],
  },
  {
    name: '$or: an empty branch',
    policy: { $or: [{ a: ['x'] }, {}] },
    scope: A,
    expect: [/^\$or\[1\]: an empty sub-policy would match every message/],
  },
  {
    name: '$or: a problem inside a branch names its path',
    policy: { $or: [{ a: ['x'] }, { price: [{ numeric: ['>'] }] }] },
    scope: A,
    expect: [/^\$or\[1\]\.price: numeric needs pairs/],
  },
  {
    name: 'keys with odd characters are quoted',
    policy: { 'a.b': 'x' },
    scope: A,
    expect: [/^"a\.b": must be an array/],
  },
  {
    name: 'six keys (attributes)',
    policy: { a: ['1'], b: ['1'], c: ['1'], d: ['1'], e: ['1'], f: ['1'] },
    scope: A,
    expect: [/^the policy has 6 keys \(a, b, c, d, e, f\) but SNS allows at most 5/],
  },
  {
    name: 'six keys (body, AWS-validated)',
    policy: {
      key_a: ['value_one'],
      key_b: ['value_two'],
      key_c: ['value_three'],
      key_d: ['value_four'],
      key_e: ['value_five'],
      key_f: ['value_six'],
    },
    scope: B,
    expect: ['has 6 keys'],
  },
  {
    name: 'six nested keys (body)',
    policy: { a: { b: ['1'], c: ['1'], d: ['1'] }, e: { f: ['1'], g: ['1'], h: ['1'] } },
    scope: B,
    expect: [/has 6 keys \(a\.b, a\.c, a\.d, e\.f, e\.g, e\.h\)/],
  },
  {
    name: 'six keys in one $or branch',
    policy: { a: ['1'], $or: [{ b: ['1'] }, { c: ['1'], d: ['1'], e: ['1'], f: ['1'], g: ['1'] }] },
    scope: A,
    expect: [/has 6 keys \(a, \$or\[1\]\.c/],
  },
  {
    name: '151 combinations: one key',
    policy: { a: many(151) },
    scope: A,
    expect: [/^the policy has 151 combinations but SNS allows at most 150/],
  },
  {
    name: '151+ combinations: multiplied',
    policy: { a: many(2), b: many(76) },
    scope: A,
    expect: ['has 152 combinations'],
  },
  {
    name: '151 combinations: summed over $or',
    policy: { $or: [{ a: many(76) }, { b: many(75) }] },
    scope: A,
    expect: ['has 151 combinations'],
  },
  {
    name: '151+ combinations: $or multiplied by the rest',
    policy: { x: many(2), $or: [{ a: many(38) }, { b: many(38) }] },
    scope: A,
    expect: ['has 152 combinations'],
  },
  {
    name: 'combinations count nesting depth (AWS-validated: 3×4 × 2×3 × 1×3 = 216)',
    policy: { key_a: { key_b: { key_c: many(4) } }, key_d: { key_e: many(3) }, key_f: many(3) },
    scope: B,
    expect: ['has 216 combinations'],
  },
  {
    name: 'over 256 KB',
    policy: { a: ['x'.repeat(FILTER_POLICY_LIMITS.maxBytes)] },
    scope: A,
    expect: [/^the policy is \d+ bytes of JSON but SNS allows at most 262144/],
  },
  {
    name: 'not JSON: undefined value',
    policy: { a: undefined },
    scope: A,
    expect: [/^a: must be an array of conditions.*undefined \(not JSON\)/],
  },
  {
    name: 'not JSON: a Date condition',
    policy: { a: [new Date(0)] },
    scope: A,
    expect: [/^a: a condition is a string, a number.*Date/],
  },
  { name: 'not JSON: NaN', policy: { a: [Number.NaN] }, scope: A, expect: [/^a: numbers must lie between/] },
  {
    name: 'invalid scope',
    policy: { a: ['x'] },
    scope: 'Body' as FilterPolicyScope,
    expect: ['must be "MessageAttributes" or "MessageBody"'],
  },
];

describe('filter policy validation', () => {
  for (const c of problemCases) {
    test(c.name, () => {
      const problems = validateFilterPolicy(c.policy, c.scope);
      assert.ok(problems.length > 0, 'refused');
      for (const e of c.expect) {
        assert.ok(
          problems.some((p) => (typeof e === 'string' ? p.includes(e) : e.test(p))),
          `expected a problem like ${e}, got:\n  ${problems.join('\n  ')}`,
        );
      }
    });
  }

  test('documented examples and limits are accepted', () => {
    const ok: [Record<string, unknown>, FilterPolicyScope][] = [
      [acceptsExample, A],
      [rejectsExample, A],
      [nestedOr, A], // 1 × (2 + 1 × (2 + 3)) = 7
      [nestedBody, B], // 3×4 × 2×3 = 72
      [{ a: ['1'], b: ['1'], c: ['1'], d: ['1'], e: ['1'] }, A], // five keys
      [{ a: many(150) }, A],
      [{ a: many(10), b: many(15) }, A],
      [{ $or: [{ a: many(75) }, { b: many(75) }] }, A],
      [
        {
          a: ['1'],
          $or: [
            { b: ['1'], c: ['1'], d: ['1'], e: ['1'] },
            { f: ['1'], g: ['1'], h: ['1'], i: ['1'] },
          ],
        },
        A,
      ], // 5 keys per branch
      [{ price: [{ numeric: ['>=', -1e9, '<=', 1e9] }, { numeric: ['=', 0.00001] }, 12.5] }, A],
      [
        {
          ip: [
            { cidr: '10.0.0.1/24' },
            { cidr: '::/0' },
            { cidr: '2001:db8::1:0:0:1/128' },
            { cidr: '::ffff:10.0.0.0/104' },
          ],
        },
        A,
      ],
      [{ a: [{ 'anything-but': 'x' }, { 'anything-but': 5 }, { 'anything-but': ['x', 5] }, { exists: false }] }, A],
      [{ a: [null, true, false, 'x', 1] }, B],
      [{ a: [{ prefix: '' }] }, A],
      [{ $or: [{ a: { b: ['x'] } }, { c: [{ exists: true }] }] }, B],
      [{}, A],
    ];
    for (const [policy, scope] of ok)
      assert.deepEqual(validateFilterPolicy(policy, scope), [], JSON.stringify(policy).slice(0, 200));
  });

  test('every problem of a policy is reported, each with its path', () => {
    const problems = validateFilterPolicy({ store: 'x', price: [{ numeric: ['>'] }], ip: [{ cidr: 'nope' }] }, A);
    assert.equal(problems.length, 3);
    assert.deepEqual(
      problems.map((p) => p.split(':')[0]),
      ['store', 'price', 'ip'],
    );
  });

  test('nesting too deep to walk is refused without overflowing the stack', () => {
    let policy: Record<string, unknown> = { leaf: ['x'] };
    for (let i = 0; i < 5000; i++) policy = { n: policy };
    const problems = validateFilterPolicy(policy, B);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^n(\.n)+\.…(\.n)+: nested more than 150 levels deep/, 'a long path is abbreviated');
  });

  test('a flood of problems is capped', () => {
    const policy = { a: Array.from({ length: 120 }, () => ({ nope: 1 })) };
    const problems = validateFilterPolicy(policy, A);
    assert.equal(problems.length, 51);
    assert.match(problems[50]!, /^… and \d+ more problems$/);
  });
});

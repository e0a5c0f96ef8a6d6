/** Matching messages against SNS filter policies (compiled once per policy). */

import {
  FILTER_POLICY_LIMITS,
  type FilterAttributeValue,
  type FilterMessage,
  type FilterPolicyScope,
  type Leaf,
  isLeaf,
  isPlainObject,
} from './policy-support.js';
import { inNetwork, parseCidr } from './ip-networks.js';

type LeafTest = (value: Leaf) => boolean;

interface KeyMatcher {
  key: string;
  /** Conditions on the key's values (ORed); undefined for a nested object. */
  tests?: LeafTest[];
  /** exists conditions: true (present) and/or false (absent). */
  existsWhen?: boolean[];
  /** A nested policy (MessageBody). */
  nested?: ObjectMatcher;
}

interface ObjectMatcher {
  keys: KeyMatcher[];
  /** Each "$or": any of its sub-policies. */
  ors: ObjectMatcher[][];
}

/**
 * Compiles a (valid) policy into a matcher. Anything invalid compiles to "no match" rather than throwing, so an
 * unvalidated policy can only filter messages out.
 */
export function compileFilterPolicy(policy: object, scope: FilterPolicyScope): (message: FilterMessage) => boolean {
  if (!isPlainObject(policy)) return () => false;
  const matcher = compileObject(policy, scope);
  if (!matcher.keys.length && !matcher.ors.length) return () => true;
  if (scope === 'MessageAttributes') {
    const get = (container: unknown, key: string) =>
      attributeValues((container as Record<string, FilterAttributeValue>)[key]);
    return (message) => matchObject(matcher, message.attributes ?? {}, get);
  }
  // SNS requires the body to be a JSON object for body filtering.
  return (message) => isPlainObject(message.body) && matchObject(matcher, message.body, bodyValues);
}

const compiled = {
  MessageAttributes: new WeakMap<object, (message: FilterMessage) => boolean>(),
  MessageBody: new WeakMap<object, (message: FilterMessage) => boolean>(),
};

/** Whether a message passes a policy (SNS semantics). The compiled policy is cached per policy object. */
export function matchesFilterPolicy(policy: object, message: FilterMessage, scope: FilterPolicyScope): boolean {
  const s: FilterPolicyScope = scope === 'MessageBody' ? 'MessageBody' : 'MessageAttributes';
  const cache = compiled[s];
  let match = cache.get(policy);
  if (!match) {
    match = compileFilterPolicy(policy, s);
    if (typeof policy === 'object' && policy !== null) cache.set(policy, match);
  }
  return match(message);
}

function compileObject(obj: Record<string, unknown>, scope: FilterPolicyScope, level = 0): ObjectMatcher {
  const matcher: ObjectMatcher = { keys: [], ors: [] };
  if (level > FILTER_POLICY_LIMITS.maxCombinations) return { keys: [{ key: '', tests: [], existsWhen: [] }], ors: [] }; // invalid: never matches
  for (const [key, value] of Object.entries(obj)) {
    if (key === '$or' && Array.isArray(value) && value.length >= 2 && value.every(isPlainObject)) {
      matcher.ors.push(value.map((branch) => compileObject(branch, scope, level + 1)));
    } else if (Array.isArray(value)) {
      const tests: LeafTest[] = [];
      const existsWhen: boolean[] = [];
      for (const condition of value) {
        if (isPlainObject(condition) && typeof condition.exists === 'boolean' && Object.keys(condition).length === 1)
          existsWhen.push(condition.exists);
        else tests.push(compileCondition(condition, scope));
      }
      matcher.keys.push({ key, tests, existsWhen });
    } else if (isPlainObject(value) && scope === 'MessageBody') {
      matcher.keys.push({ key, nested: compileObject(value, scope, level + 1) });
    } else {
      matcher.keys.push({ key, tests: [], existsWhen: [] }); // invalid: never matches
    }
  }
  return matcher;
}

type ValuesOf = (container: unknown, key: string) => Leaf[];

function matchObject(matcher: ObjectMatcher, container: unknown, valuesOf: ValuesOf): boolean {
  for (const km of matcher.keys) {
    if (km.nested) {
      const child = isPlainObject(container) ? container[km.key] : undefined;
      if (!matchNested(km.nested, child, valuesOf)) return false;
      continue;
    }
    const values = valuesOf(container, km.key);
    const present = values.length > 0;
    let ok = km.existsWhen!.includes(present);
    if (!ok && present) ok = km.tests!.some((test) => values.some(test));
    if (!ok) return false;
  }
  for (const branches of matcher.ors) {
    if (!branches.some((branch) => matchObject(branch, container, valuesOf))) return false;
  }
  return true;
}

/** A nested policy against a body value; an array matches when one of its elements does (as a whole). */
function matchNested(matcher: ObjectMatcher, value: unknown, valuesOf: ValuesOf): boolean {
  if (!Array.isArray(value)) return matchObject(matcher, value, valuesOf);
  const elements = flatten(value);
  if (!elements.length) return matchObject(matcher, undefined, valuesOf);
  return elements.some((element) => matchObject(matcher, element, valuesOf));
}

/** The leaf values of a body property: arrays contribute their (flattened) elements; objects are not leaves. */
function bodyValues(container: unknown, key: string): Leaf[] {
  if (!isPlainObject(container)) return [];
  const value = container[key];
  if (Array.isArray(value)) return flatten(value).filter(isLeaf);
  return isLeaf(value) ? [value] : [];
}

function attributeValues(value: FilterAttributeValue): Leaf[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.filter(isLeaf);
  return isLeaf(value) ? [value] : [];
}

/** Nested arrays flattened without recursion (a hostile body can nest deeply). */
function flatten(values: unknown[]): unknown[] {
  if (!values.some(Array.isArray)) return values;
  const out: unknown[] = [];
  const stack: unknown[] = [...values].reverse();
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    else out.push(v);
  }
  return out;
}

function compileCondition(condition: unknown, scope: FilterPolicyScope): LeafTest {
  const lenient = scope === 'MessageAttributes';
  const equals = equality(lenient);
  if (
    typeof condition === 'string' ||
    typeof condition === 'number' ||
    typeof condition === 'boolean' ||
    condition === null
  ) {
    return (v) => equals(condition, v);
  }
  if (!isPlainObject(condition) || Object.keys(condition).length !== 1) return never;
  const [operator, operand] = Object.entries(condition)[0]!;
  switch (operator) {
    case 'prefix':
      return typeof operand === 'string' ? (v) => typeof v === 'string' && v.startsWith(operand) : never;
    case 'suffix':
      return typeof operand === 'string' ? (v) => typeof v === 'string' && v.endsWith(operand) : never;
    case 'equals-ignore-case': {
      if (typeof operand !== 'string') return never;
      const folded = operand.toLowerCase();
      return (v) => typeof v === 'string' && v.toLowerCase() === folded;
    }
    case 'anything-but': {
      if (typeof operand === 'string' || typeof operand === 'number') return (v) => !equals(operand, v);
      if (Array.isArray(operand)) {
        const excluded = operand.filter((x): x is string | number => typeof x === 'string' || typeof x === 'number');
        return (v) => !excluded.some((x) => equals(x, v));
      }
      if (isPlainObject(operand) && typeof operand.prefix === 'string' && Object.keys(operand).length === 1) {
        const prefix = operand.prefix;
        return (v) => typeof v === 'string' && !v.startsWith(prefix);
      }
      return never;
    }
    case 'numeric': {
      const test = compileNumeric(operand);
      if (!test) return never;
      return (v) => {
        const n = toNumber(v, lenient);
        return n !== undefined && test(n);
      };
    }
    case 'cidr': {
      const network = typeof operand === 'string' ? parseCidr(operand) : undefined;
      if (!network) return never;
      return (v) => typeof v === 'string' && inNetwork(network, v);
    }
    default:
      return never;
  }
}

const never: LeafTest = () => false;

/**
 * Exact equality of a policy value and a message value. In a body, JSON types must agree. Attributes are strings
 * in rowcast, so there a numeric string equals the number (numerically) and "true"/"false" equal the booleans.
 */
function equality(lenient: boolean): (expected: Leaf, value: Leaf) => boolean {
  return (expected, value) => {
    if (typeof expected === 'number') {
      const n = toNumber(value, lenient);
      return n !== undefined && n === expected;
    }
    if (typeof expected === 'boolean' && lenient && typeof value === 'string') return value === String(expected);
    return expected === value;
  };
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function toNumber(value: Leaf, lenient: boolean): number | undefined {
  if (typeof value === 'number') return value;
  if (lenient && typeof value === 'string' && NUMBER.test(value)) return Number(value);
  return undefined;
}

function compileNumeric(operand: unknown): ((n: number) => boolean) | undefined {
  if (!Array.isArray(operand) || operand.length === 0 || operand.length % 2 !== 0) return undefined;
  const checks: ((n: number) => boolean)[] = [];
  for (let i = 0; i < operand.length; i += 2) {
    const op = operand[i];
    const bound = operand[i + 1];
    if (typeof bound !== 'number') return undefined;
    switch (op) {
      case '=':
        checks.push((n) => n === bound);
        break;
      case '<':
        checks.push((n) => n < bound);
        break;
      case '<=':
        checks.push((n) => n <= bound);
        break;
      case '>':
        checks.push((n) => n > bound);
        break;
      case '>=':
        checks.push((n) => n >= bound);
        break;
      default:
        return undefined;
    }
  }
  return (n) => checks.every((check) => check(n));
}

/** Whether a stored message passes a subscription's policy: the body is parsed only for scope MessageBody, and only JSON. */
export function messagePassesFilter(
  policy: object,
  scope: FilterPolicyScope,
  message: { attributes: Record<string, unknown>; body: string; contentType: string },
): boolean {
  return matchesFilterPolicy(
    policy,
    {
      attributes: message.attributes as FilterMessage['attributes'],
      body: scope === 'MessageBody' ? jsonBody(message) : undefined,
    },
    scope,
  );
}

function jsonBody(message: { body: string; contentType: string }): unknown {
  if (message.contentType !== 'application/json') return undefined;
  try {
    return JSON.parse(message.body);
  } catch {
    return undefined;
  }
}

/**
 * Amazon SNS subscription filter policies: validation (with problems that say where and how to fix) and matching.
 * Pure: no I/O, no clock, no randomness.
 *
 * A policy is a JSON object. Each key names a message attribute (scope MessageAttributes) or a property of the
 * JSON body (scope MessageBody, where objects nest to reach nested properties). Each key holds an array of
 * conditions: the key matches when any condition matches (OR); the policy matches when every key does (AND).
 * "$or": [{…}, {…}] matches when any of its sub-policies does.
 *
 * rowcast attributes are strings (SNS also has Number and String.Array attributes): an attribute string that is
 * a valid number counts as a number for numeric conditions and exact numbers ([5] matches "5" and "5.0"), "true"
 * and "false" match the booleans, and a string[] attribute plays String.Array (any element may match).
 */

export type FilterPolicyScope = 'MessageAttributes' | 'MessageBody';

/** An attribute value: absent (undefined), a string, a number, or a list (SNS's String.Array). */
export type FilterAttributeValue = string | number | string[] | undefined;

export interface FilterMessage {
  attributes: Record<string, FilterAttributeValue>;
  /** The parsed JSON body (scope MessageBody); anything but a JSON object matches no non-empty policy. */
  body?: unknown;
}

/** SNS's documented limits. */
export const FILTER_POLICY_LIMITS = {
  /** Keys per policy (per $or branch; nested bodies count the keys that hold conditions). */
  maxKeys: 5,
  /** Total combination: per key, values × nesting depth; multiplied across keys; summed across $or branches. */
  maxCombinations: 150,
  /** Bytes of the policy's JSON (UTF-8). */
  maxBytes: 256 * 1024,
  /** Numbers in a policy lie within ±maxNumber … */
  maxNumber: 1e9,
  /** … with at most this many digits after the decimal point. */
  maxDecimals: 5,
} as const;

const OPERATORS = ['anything-but', 'prefix', 'suffix', 'equals-ignore-case', 'numeric', 'exists', 'cidr'] as const;
type Operator = (typeof OPERATORS)[number];
const OPERATOR_LIST = 'anything-but, prefix, suffix, equals-ignore-case, numeric, exists, cidr';
const NUMERIC_OPERATORS = ['=', '<', '<=', '>', '>='];
/** Reported problems stop here so that a broken generated policy doesn't produce thousands of lines. */
const MAX_PROBLEMS = 50;

// ───────────────────────────────────────── validation ─────────────────────────────────────────

interface Walk {
  scope: FilterPolicyScope;
  problems: string[];
  /** Set when nesting went too deep to walk further (that alone exceeds the combination limit). */
  tooDeep: boolean;
  sawOr: boolean;
}

/** What a (sub-)policy contributes to the limits. */
interface Tally {
  /** Sum over $or branches of the product over keys of (values × depth). */
  combinations: number;
  /** The keys of its largest $or branch (paths, for the message). */
  keys: string[];
}

/**
 * Problems with a filter policy, each naming where in the policy (e.g. `store.price`) and how to fix it;
 * empty when SNS would accept it (and rowcast can match it).
 */
export function validateFilterPolicy(policy: unknown, scope: FilterPolicyScope): string[] {
  if (scope !== 'MessageAttributes' && scope !== 'MessageBody') {
    return [`the filter policy scope must be "MessageAttributes" or "MessageBody", not ${preview(scope)}`];
  }
  if (!isPlainObject(policy)) {
    const hint = typeof policy === 'string' ? ' (write the policy as an object, not as a string of JSON)' : '';
    return [`a filter policy must be a JSON object of keys and condition arrays, e.g. {"store": ["example_corp"]}; got ${describe(policy)}${hint}`];
  }
  const walk: Walk = { scope, problems: [], tooDeep: false, sawOr: false };

  let json: string | undefined;
  try {
    json = JSON.stringify(policy);
  } catch (error) {
    // Too deep to serialise is reported by the walk below.
    if (!(error instanceof RangeError)) walk.problems.push('the policy is not plain JSON (it has a cycle or a BigInt); write it as JSON data');
  }
  if (json !== undefined) {
    const bytes = utf8Length(json);
    if (bytes > FILTER_POLICY_LIMITS.maxBytes) {
      walk.problems.push(
        `the policy is ${bytes} bytes of JSON but SNS allows at most ${FILTER_POLICY_LIMITS.maxBytes} (256 KB); shorten long value lists (a prefix, suffix or anything-but often replaces them) or split it across subscriptions`,
      );
    }
  }

  const tally = walkObject(policy, '', 1, 0, walk);
  if (tally.keys.length > FILTER_POLICY_LIMITS.maxKeys) {
    walk.problems.push(
      `${walk.sawOr ? 'the policy (with its largest "$or" branches)' : 'the policy'} has ${tally.keys.length} keys (${tally.keys.join(', ')}) but SNS allows at most ${FILTER_POLICY_LIMITS.maxKeys}; drop keys that don't narrow the match, or split the policy across subscriptions`,
    );
  }
  if (!walk.tooDeep && tally.combinations > FILTER_POLICY_LIMITS.maxCombinations) {
    walk.problems.push(
      `the policy has ${tally.combinations} combinations but SNS allows at most ${FILTER_POLICY_LIMITS.maxCombinations} (per key: its number of values × its nesting depth; multiplied across keys; added up across "$or" branches); use fewer values per key (e.g. one prefix or anything-but instead of a long list) or split the policy across subscriptions`,
    );
  }
  if (walk.problems.length > MAX_PROBLEMS) {
    const more = walk.problems.length - MAX_PROBLEMS;
    return [...walk.problems.slice(0, MAX_PROBLEMS), `… and ${more} more problem${more === 1 ? '' : 's'}`];
  }
  return walk.problems;
}

/**
 * depth: the nesting depth of this object's keys (1 at the top). level: objects and "$or"s walked through, which
 * bounds recursion; each level adds at least one combination, so past maxCombinations the policy can't be valid.
 */
function walkObject(obj: Record<string, unknown>, path: string, depth: number, level: number, walk: Walk): Tally {
  if (level > FILTER_POLICY_LIMITS.maxCombinations) {
    walk.tooDeep = true;
    problem(walk, path, `nested more than ${FILTER_POLICY_LIMITS.maxCombinations} levels deep, which always exceeds SNS's limit of ${FILTER_POLICY_LIMITS.maxCombinations} combinations; flatten the policy`);
    return { combinations: 1, keys: [] };
  }
  let combinations = 1;
  const keys: string[] = [];
  for (const [key, value] of Object.entries(obj)) {
    const at = join(path, key);
    if (key === '$or') {
      walk.sawOr = true;
      const or = walkOr(value, at, depth, level, walk);
      combinations *= or.combinations;
      keys.push(...or.keys);
    } else if (Array.isArray(value)) {
      walkConditions(value, at, walk);
      combinations *= Math.max(1, value.length) * depth;
      keys.push(at);
    } else if (isPlainObject(value)) {
      const operator = Object.keys(value).find((k) => (OPERATORS as readonly string[]).includes(k));
      if (operator && Object.keys(value).length === 1 && !Array.isArray(value[operator]) && !isPlainObject(value[operator])) {
        problem(walk, at, `conditions go in an array: write ${preview(key)}: [${preview(value)}] instead of ${preview(key)}: ${preview(value)}`);
        keys.push(at);
      } else if (walk.scope === 'MessageAttributes') {
        problem(walk, at, `nested policies only work with filterPolicyScope MessageBody (attributes are flat); with MessageAttributes give the key an array of conditions, e.g. ${preview(key)}: ["example_corp"]`);
        keys.push(at);
      } else if (Object.keys(value).length === 0) {
        problem(walk, at, 'an empty object is neither a nested policy nor a condition; add the nested keys to match, or remove it');
        keys.push(at);
      } else {
        const nested = walkObject(value, at, depth + 1, level + 1, walk);
        combinations *= nested.combinations;
        keys.push(...nested.keys);
      }
    } else {
      const nesting = walk.scope === 'MessageBody' ? ' (or, with MessageBody, an object of nested keys)' : '';
      problem(walk, at, `must be an array of conditions${nesting}, e.g. ${preview(key)}: [${value === undefined ? '"value"' : preview(value)}]; got ${describe(value)}`);
      keys.push(at);
    }
  }
  return { combinations, keys };
}

function walkOr(value: unknown, path: string, depth: number, level: number, walk: Walk): Tally {
  const example = '"$or": [{"a": ["x"]}, {"b": ["y"]}]';
  if (!Array.isArray(value) || value.length < 2 || !value.every(isPlainObject)) {
    // SNS would read a malformed "$or" as an ordinary key named "$or"; that is almost surely a mistake.
    problem(walk, path, `"$or" needs an array of at least 2 sub-policies (objects), e.g. ${example}; got ${preview(value)}`);
    return { combinations: 1, keys: [path] };
  }
  let combinations = 0;
  let keys: string[] = [];
  value.forEach((branch, i) => {
    const at = `${path}[${i}]`;
    const reserved = Object.keys(branch).filter((k) => (OPERATORS as readonly string[]).includes(k));
    if (reserved.length) {
      problem(walk, at, `${reserved.map((k) => `"${k}"`).join(', ')} is an operator, not a key: a sub-policy of "$or" maps keys to condition arrays, e.g. {"price": [{"numeric": [">", 100]}]}`);
      combinations += 1;
      return;
    }
    if (Object.keys(branch).length === 0) {
      problem(walk, at, 'an empty sub-policy would match every message; give it at least one key, or remove it');
      combinations += 1;
      return;
    }
    const tally = walkObject(branch, at, depth, level + 1, walk);
    combinations += tally.combinations;
    if (tally.keys.length > keys.length) keys = tally.keys;
  });
  return { combinations, keys };
}

function walkConditions(conditions: unknown[], path: string, walk: Walk): void {
  if (conditions.length === 0) {
    problem(walk, path, 'an empty array matches nothing; list at least one condition, e.g. ["example_corp"], or remove the key');
    return;
  }
  for (const condition of conditions) walkCondition(condition, path, walk);
}

function walkCondition(condition: unknown, path: string, walk: Walk): void {
  if (typeof condition === 'string' || typeof condition === 'boolean') return;
  if (typeof condition === 'number') return checkNumber(condition, path, walk);
  if (condition === null) {
    if (walk.scope === 'MessageAttributes') {
      problem(walk, path, 'null never matches a message attribute (attribute values are strings); use {"exists": false} to match messages without this attribute');
    }
    return;
  }
  if (Array.isArray(condition)) {
    problem(walk, path, `a condition can't be an array (${preview(condition)}); list its values directly in the key's array, which ORs them`);
    return;
  }
  if (!isPlainObject(condition)) {
    problem(walk, path, `a condition is a string, a number, true, false, null or an operator object such as {"prefix": "a"}; got ${describe(condition)}`);
    return;
  }
  const operators = Object.keys(condition);
  if (operators.length !== 1) {
    problem(
      walk,
      path,
      operators.length === 0
        ? `an empty object is not a condition; write a value or an operator object, e.g. {"prefix": "a"} (operators: ${OPERATOR_LIST})`
        : `a condition object holds exactly one operator but ${preview(condition)} has ${operators.length} (${operators.join(', ')}); put each in its own array element (the elements are ORed)`,
    );
    return;
  }
  const operator = operators[0]!;
  const operand = condition[operator];
  if (!(OPERATORS as readonly string[]).includes(operator)) {
    problem(walk, path, unknownOperator(operator));
    return;
  }
  switch (operator as Operator) {
    case 'prefix':
    case 'suffix':
    case 'equals-ignore-case':
      if (typeof operand !== 'string') problem(walk, path, `${operator} needs a string, e.g. {"${operator}": "bas"}; got ${preview(operand)}`);
      return;
    case 'exists':
      if (typeof operand !== 'boolean') problem(walk, path, `exists needs true or false, e.g. {"exists": true}; got ${preview(operand)}`);
      return;
    case 'anything-but':
      return checkAnythingBut(operand, path, walk);
    case 'numeric':
      return checkNumeric(operand, path, walk);
    case 'cidr':
      if (typeof operand !== 'string' || !parseCidr(operand)) {
        problem(walk, path, `cidr needs an IPv4 or IPv6 network as address/prefix-length, e.g. {"cidr": "10.0.0.0/24"} or {"cidr": "2001:db8::/32"}; got ${preview(operand)}`);
      }
      return;
  }
}

function checkAnythingBut(operand: unknown, path: string, walk: Walk): void {
  const usage = 'anything-but needs a string, a number, a list of them, or {"prefix": "…"}, e.g. {"anything-but": ["rugby", "tennis"]}';
  if (typeof operand === 'string') return;
  if (typeof operand === 'number') return checkNumber(operand, path, walk);
  if (Array.isArray(operand)) {
    if (operand.length === 0) problem(walk, path, `${usage}; an empty list excludes nothing (to match any value use {"exists": true})`);
    for (const v of operand) {
      if (typeof v === 'number') checkNumber(v, path, walk);
      else if (typeof v !== 'string') problem(walk, path, `${usage}; the list holds ${preview(v)}`);
    }
    return;
  }
  if (isPlainObject(operand)) {
    const inner = Object.keys(operand);
    if (inner.length === 1 && inner[0] === 'prefix') {
      if (typeof operand.prefix !== 'string' || operand.prefix === '') problem(walk, path, `anything-but's prefix needs a non-empty string, e.g. {"anything-but": {"prefix": "order-"}}; got ${preview(operand.prefix)}`);
      return;
    }
    if (inner.length === 1 && ['suffix', 'wildcard', 'equals-ignore-case'].includes(inner[0]!)) {
      problem(walk, path, `SNS supports only {"prefix": …} inside anything-but, not ${inner[0]} (that is EventBridge); match the values you do want instead, e.g. with a list or {"prefix": …}`);
      return;
    }
  }
  problem(walk, path, `${usage}; got ${preview(operand)}`);
}

function checkNumeric(operand: unknown, path: string, walk: Walk): void {
  const usage = 'numeric needs pairs of operator and number, e.g. {"numeric": [">", 0, "<=", 150]} or {"numeric": ["=", 301.5]}';
  if (!Array.isArray(operand) || operand.length === 0 || operand.length % 2 !== 0 || !operand.every((v, i) => (i % 2 === 0 ? typeof v === 'string' : typeof v === 'number'))) {
    problem(walk, path, `${usage}; got ${preview(operand)}`);
    return;
  }
  const ops = operand.filter((_, i) => i % 2 === 0) as string[];
  const bad = ops.find((op) => !NUMERIC_OPERATORS.includes(op));
  if (bad !== undefined) {
    problem(walk, path, `numeric operator ${preview(bad)} is not one of ${NUMERIC_OPERATORS.join(', ')}; got ${preview(operand)}`);
    return;
  }
  for (let i = 1; i < operand.length; i += 2) checkNumber(operand[i] as number, path, walk);
  if (ops.length > 2 || (ops.length === 2 && (!['>', '>='].includes(ops[0]!) || !['<', '<='].includes(ops[1]!)))) {
    problem(walk, path, `numeric takes one comparison, or a range of a lower bound (> or >=) then an upper bound (< or <=), e.g. [">", 0, "<=", 150]; got ${preview(operand)}`);
    return;
  }
  if (ops.length === 2 && (operand[1] as number) >= (operand[3] as number)) {
    problem(walk, path, `numeric range ${preview(operand)} is empty: the lower bound must be below the upper bound`);
  }
}

function checkNumber(n: number, path: string, walk: Walk): void {
  const { maxNumber, maxDecimals } = FILTER_POLICY_LIMITS;
  if (!Number.isFinite(n) || Math.abs(n) > maxNumber || decimalPlaces(n) > maxDecimals) {
    problem(walk, path, `numbers must lie between -${maxNumber} and ${maxNumber} with at most ${maxDecimals} digits after the decimal point (SNS's numeric precision); got ${n}`);
  }
}

function unknownOperator(operator: string): string {
  if (operator === 'wildcard') return 'wildcard is not an SNS filter operator (it is EventBridge\'s); use prefix or suffix';
  const near = OPERATORS.find((op) => editDistance(op, operator.toLowerCase()) <= 2);
  return `unknown operator ${preview(operator)}${near ? ` (did you mean "${near}"?)` : ''}; SNS supports ${OPERATOR_LIST}`;
}

function problem(walk: Walk, path: string, message: string): void {
  const shown = path.length > 100 ? `${path.slice(0, 48)}…${path.slice(-48)}` : path;
  walk.problems.push(shown ? `${shown}: ${message}` : message);
}

function join(path: string, key: string): string {
  const part = /^[^.[\]"'\s]+$/.test(key) ? key : JSON.stringify(key);
  return path ? (part.startsWith('"') ? `${path}[${part}]` : `${path}.${part}`) : part;
}

// ───────────────────────────────────────── matching ─────────────────────────────────────────

type Leaf = string | number | boolean | null;
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
    const get = (container: unknown, key: string) => attributeValues((container as Record<string, FilterAttributeValue>)[key]);
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
        if (isPlainObject(condition) && typeof condition.exists === 'boolean' && Object.keys(condition).length === 1) existsWhen.push(condition.exists);
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
  if (typeof condition === 'string' || typeof condition === 'number' || typeof condition === 'boolean' || condition === null) {
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
      case '=': checks.push((n) => n === bound); break;
      case '<': checks.push((n) => n < bound); break;
      case '<=': checks.push((n) => n <= bound); break;
      case '>': checks.push((n) => n > bound); break;
      case '>=': checks.push((n) => n >= bound); break;
      default: return undefined;
    }
  }
  return (n) => checks.every((check) => check(n));
}

// ───────────────────────────────────────── IP networks ─────────────────────────────────────────

interface Network {
  version: 4 | 6;
  /** The address with the host bits cleared. */
  base: bigint;
  prefixLength: number;
}

function parseCidr(text: string): Network | undefined {
  const parts = text.split('/');
  if (parts.length !== 2 || !/^\d{1,3}$/.test(parts[1]!)) return undefined;
  const address = parseIp(parts[0]!);
  const prefixLength = Number(parts[1]);
  if (!address || prefixLength > (address.version === 4 ? 32 : 128)) return undefined;
  return { version: address.version, base: mask(address.value, address.version, prefixLength), prefixLength };
}

function inNetwork(network: Network, text: string): boolean {
  const address = parseIp(text);
  return !!address && address.version === network.version && mask(address.value, address.version, network.prefixLength) === network.base;
}

function mask(value: bigint, version: 4 | 6, prefixLength: number): bigint {
  const shift = BigInt((version === 4 ? 32 : 128) - prefixLength);
  return (value >> shift) << shift;
}

function parseIp(text: string): { version: 4 | 6; value: bigint } | undefined {
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined ? undefined : { version: 6, value };
  }
  const value = parseIPv4(text);
  return value === undefined ? undefined : { version: 4, value };
}

function parseIPv4(text: string): bigint | undefined {
  const octets = text.split('.');
  if (octets.length !== 4) return undefined;
  let value = 0n;
  for (const octet of octets) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(octet) || Number(octet) > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseIPv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece); // an embedded IPv4 address takes the last two groups
        if (v4 === undefined) return undefined;
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const group of [...head, ...new Array<number>(missing).fill(0), ...tail]) value = (value << 16n) | BigInt(group);
  return value;
}

// ───────────────────────────────────────── helpers ─────────────────────────────────────────

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isLeaf(value: unknown): value is Leaf {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** Digits after the decimal point of a number as JSON would write it (1e-7 has 7). */
function decimalPlaces(n: number): number {
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(Math.abs(n)));
  if (!m) return Infinity;
  return Math.max(0, (m[2]?.length ?? 0) - (m[3] ? Number(m[3]) : 0));
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Levenshtein distance: how many single-character edits turn a into b (for "did you mean" suggestions). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'object') return isPlainObject(value) ? 'an object' : `a ${value.constructor?.name ?? 'non-JSON'} object`;
  if (typeof value === 'string') return `the string ${preview(value)}`;
  if (typeof value === 'undefined' || typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') return `${typeof value} (not JSON)`;
  return `${typeof value} ${String(value)}`;
}

/** Compact JSON of a value for a message, truncated. */
function preview(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'number' && !Number.isFinite(value) ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

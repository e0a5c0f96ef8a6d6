/** Validation of SNS filter policies: every problem says where it is and how to fix it. */

import {
  FILTER_POLICY_LIMITS,
  type FilterPolicyScope,
  NUMERIC_OPERATORS,
  OPERATORS,
  OPERATOR_LIST,
  type Operator,
  decimalPlaces,
  describe,
  editDistance,
  isPlainObject,
  preview,
  utf8Length,
} from './policy-support.js';
import { parseCidr } from './ip-networks.js';

const MAX_PROBLEMS = 50;

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
    return [
      `a filter policy must be a JSON object of keys and condition arrays, e.g. {"store": ["example_corp"]}; got ${describe(policy)}${hint}`,
    ];
  }
  const walk: Walk = { scope, problems: [], tooDeep: false, sawOr: false };

  let json: string | undefined;
  try {
    json = JSON.stringify(policy);
  } catch (error) {
    // Too deep to serialise is reported by the walk below.
    if (!(error instanceof RangeError))
      walk.problems.push('the policy is not plain JSON (it has a cycle or a BigInt); write it as JSON data');
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
    problem(
      walk,
      path,
      `nested more than ${FILTER_POLICY_LIMITS.maxCombinations} levels deep, which always exceeds SNS's limit of ${FILTER_POLICY_LIMITS.maxCombinations} combinations; flatten the policy`,
    );
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
      if (
        operator &&
        Object.keys(value).length === 1 &&
        !Array.isArray(value[operator]) &&
        !isPlainObject(value[operator])
      ) {
        problem(
          walk,
          at,
          `conditions go in an array: write ${preview(key)}: [${preview(value)}] instead of ${preview(key)}: ${preview(value)}`,
        );
        keys.push(at);
      } else if (walk.scope === 'MessageAttributes') {
        problem(
          walk,
          at,
          `nested policies only work with filterPolicyScope MessageBody (attributes are flat); with MessageAttributes give the key an array of conditions, e.g. ${preview(key)}: ["example_corp"]`,
        );
        keys.push(at);
      } else if (Object.keys(value).length === 0) {
        problem(
          walk,
          at,
          'an empty object is neither a nested policy nor a condition; add the nested keys to match, or remove it',
        );
        keys.push(at);
      } else {
        const nested = walkObject(value, at, depth + 1, level + 1, walk);
        combinations *= nested.combinations;
        keys.push(...nested.keys);
      }
    } else {
      const nesting = walk.scope === 'MessageBody' ? ' (or, with MessageBody, an object of nested keys)' : '';
      problem(
        walk,
        at,
        `must be an array of conditions${nesting}, e.g. ${preview(key)}: [${value === undefined ? '"value"' : preview(value)}]; got ${describe(value)}`,
      );
      keys.push(at);
    }
  }
  return { combinations, keys };
}

function walkOr(value: unknown, path: string, depth: number, level: number, walk: Walk): Tally {
  const example = '"$or": [{"a": ["x"]}, {"b": ["y"]}]';
  if (!Array.isArray(value) || value.length < 2 || !value.every(isPlainObject)) {
    // SNS would read a malformed "$or" as an ordinary key named "$or"; that is almost surely a mistake.
    problem(
      walk,
      path,
      `"$or" needs an array of at least 2 sub-policies (objects), e.g. ${example}; got ${preview(value)}`,
    );
    return { combinations: 1, keys: [path] };
  }
  let combinations = 0;
  let keys: string[] = [];
  value.forEach((branch, i) => {
    const at = `${path}[${i}]`;
    const reserved = Object.keys(branch).filter((k) => (OPERATORS as readonly string[]).includes(k));
    if (reserved.length) {
      problem(
        walk,
        at,
        `${reserved.map((k) => `"${k}"`).join(', ')} is an operator, not a key: a sub-policy of "$or" maps keys to condition arrays, e.g. {"price": [{"numeric": [">", 100]}]}`,
      );
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
    problem(
      walk,
      path,
      'an empty array matches nothing; list at least one condition, e.g. ["example_corp"], or remove the key',
    );
    return;
  }
  for (const condition of conditions) walkCondition(condition, path, walk);
}

function walkCondition(condition: unknown, path: string, walk: Walk): void {
  if (typeof condition === 'string' || typeof condition === 'boolean') return;
  if (typeof condition === 'number') return checkNumber(condition, path, walk);
  if (condition === null) {
    if (walk.scope === 'MessageAttributes') {
      problem(
        walk,
        path,
        'null never matches a message attribute (attribute values are strings); use {"exists": false} to match messages without this attribute',
      );
    }
    return;
  }
  if (Array.isArray(condition)) {
    problem(
      walk,
      path,
      `a condition can't be an array (${preview(condition)}); list its values directly in the key's array, which ORs them`,
    );
    return;
  }
  if (!isPlainObject(condition)) {
    problem(
      walk,
      path,
      `a condition is a string, a number, true, false, null or an operator object such as {"prefix": "a"}; got ${describe(condition)}`,
    );
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
      if (typeof operand !== 'string')
        problem(walk, path, `${operator} needs a string, e.g. {"${operator}": "bas"}; got ${preview(operand)}`);
      return;
    case 'exists':
      if (typeof operand !== 'boolean')
        problem(walk, path, `exists needs true or false, e.g. {"exists": true}; got ${preview(operand)}`);
      return;
    case 'anything-but':
      return checkAnythingBut(operand, path, walk);
    case 'numeric':
      return checkNumeric(operand, path, walk);
    case 'cidr':
      if (typeof operand !== 'string' || !parseCidr(operand)) {
        problem(
          walk,
          path,
          `cidr needs an IPv4 or IPv6 network as address/prefix-length, e.g. {"cidr": "10.0.0.0/24"} or {"cidr": "2001:db8::/32"}; got ${preview(operand)}`,
        );
      }
      return;
  }
}

function checkAnythingBut(operand: unknown, path: string, walk: Walk): void {
  const usage =
    'anything-but needs a string, a number, a list of them, or {"prefix": "…"}, e.g. {"anything-but": ["rugby", "tennis"]}';
  if (typeof operand === 'string') return;
  if (typeof operand === 'number') return checkNumber(operand, path, walk);
  if (Array.isArray(operand)) {
    if (operand.length === 0)
      problem(walk, path, `${usage}; an empty list excludes nothing (to match any value use {"exists": true})`);
    for (const v of operand) {
      if (typeof v === 'number') checkNumber(v, path, walk);
      else if (typeof v !== 'string') problem(walk, path, `${usage}; the list holds ${preview(v)}`);
    }
    return;
  }
  if (isPlainObject(operand)) {
    const inner = Object.keys(operand);
    if (inner.length === 1 && inner[0] === 'prefix') {
      if (typeof operand.prefix !== 'string' || operand.prefix === '')
        problem(
          walk,
          path,
          `anything-but's prefix needs a non-empty string, e.g. {"anything-but": {"prefix": "order-"}}; got ${preview(operand.prefix)}`,
        );
      return;
    }
    if (inner.length === 1 && ['suffix', 'wildcard', 'equals-ignore-case'].includes(inner[0]!)) {
      problem(
        walk,
        path,
        `SNS supports only {"prefix": …} inside anything-but, not ${inner[0]} (that is EventBridge); match the values you do want instead, e.g. with a list or {"prefix": …}`,
      );
      return;
    }
  }
  problem(walk, path, `${usage}; got ${preview(operand)}`);
}

function checkNumeric(operand: unknown, path: string, walk: Walk): void {
  const usage =
    'numeric needs pairs of operator and number, e.g. {"numeric": [">", 0, "<=", 150]} or {"numeric": ["=", 301.5]}';
  if (
    !Array.isArray(operand) ||
    operand.length === 0 ||
    operand.length % 2 !== 0 ||
    !operand.every((v, i) => (i % 2 === 0 ? typeof v === 'string' : typeof v === 'number'))
  ) {
    problem(walk, path, `${usage}; got ${preview(operand)}`);
    return;
  }
  const ops = operand.filter((_, i) => i % 2 === 0) as string[];
  const bad = ops.find((op) => !NUMERIC_OPERATORS.includes(op));
  if (bad !== undefined) {
    problem(
      walk,
      path,
      `numeric operator ${preview(bad)} is not one of ${NUMERIC_OPERATORS.join(', ')}; got ${preview(operand)}`,
    );
    return;
  }
  for (let i = 1; i < operand.length; i += 2) checkNumber(operand[i] as number, path, walk);
  if (ops.length > 2 || (ops.length === 2 && (!['>', '>='].includes(ops[0]!) || !['<', '<='].includes(ops[1]!)))) {
    problem(
      walk,
      path,
      `numeric takes one comparison, or a range of a lower bound (> or >=) then an upper bound (< or <=), e.g. [">", 0, "<=", 150]; got ${preview(operand)}`,
    );
    return;
  }
  if (ops.length === 2 && (operand[1] as number) >= (operand[3] as number)) {
    problem(walk, path, `numeric range ${preview(operand)} is empty: the lower bound must be below the upper bound`);
  }
}

function checkNumber(n: number, path: string, walk: Walk): void {
  const { maxNumber, maxDecimals } = FILTER_POLICY_LIMITS;
  if (!Number.isFinite(n) || Math.abs(n) > maxNumber || decimalPlaces(n) > maxDecimals) {
    problem(
      walk,
      path,
      `numbers must lie between -${maxNumber} and ${maxNumber} with at most ${maxDecimals} digits after the decimal point (SNS's numeric precision); got ${n}`,
    );
  }
}

function unknownOperator(operator: string): string {
  if (operator === 'wildcard')
    return "wildcard is not an SNS filter operator (it is EventBridge's); use prefix or suffix";
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

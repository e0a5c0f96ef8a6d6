/** What validation and matching of filter policies share: the policy's types, SNS's limits, operators, helpers. */

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

export const OPERATORS = [
  'anything-but',
  'prefix',
  'suffix',
  'equals-ignore-case',
  'numeric',
  'exists',
  'cidr',
] as const;
export type Operator = (typeof OPERATORS)[number];
export const OPERATOR_LIST = 'anything-but, prefix, suffix, equals-ignore-case, numeric, exists, cidr';
export const NUMERIC_OPERATORS = ['=', '<', '<=', '>', '>='];
/** Reported problems stop here so that a broken generated policy doesn't produce thousands of lines. */

export type Leaf = string | number | boolean | null;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function isLeaf(value: unknown): value is Leaf {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

/** Digits after the decimal point of a number as JSON would write it (1e-7 has 7). */
export function decimalPlaces(n: number): number {
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(Math.abs(n)));
  if (!m) return Infinity;
  return Math.max(0, (m[2]?.length ?? 0) - (m[3] ? Number(m[3]) : 0));
}

export function utf8Length(text: string): number {
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
    for (let j = 1; j <= b.length; j++)
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (typeof value === 'object')
    return isPlainObject(value) ? 'an object' : `a ${value.constructor?.name ?? 'non-JSON'} object`;
  if (typeof value === 'string') return `the string ${preview(value)}`;
  if (
    typeof value === 'undefined' ||
    typeof value === 'function' ||
    typeof value === 'symbol' ||
    typeof value === 'bigint'
  )
    return `${typeof value} (not JSON)`;
  return `${typeof value} ${String(value)}`;
}

/** Compact JSON of a value for a message, truncated. */
export function preview(value: unknown): string {
  let text: string;
  try {
    text =
      typeof value === 'number' && !Number.isFinite(value) ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

import { ErrorCodes, RowcastError } from '../../model/errors.js';
import {
  type FilterAttributeValue,
  type FilterMessage,
  type FilterPolicyScope,
  matchesFilterPolicy,
} from '../../model/filter-policy/filter-policy.js';
import type { Pool } from '../../store/pool.js';
import { notDeclared } from '../inspect/declarations.js';

/* Trying a message against the subscriptions' filter policies, by the matcher delivery uses; it changes nothing. */

export interface FilterPolicyVerdict {
  name: string;
  topic: string;
  matched: boolean;
  reason?: string;
}

/**
 * Which subscriptions (of `topic`, or of every topic) would receive a message with this body and these attributes,
 * by the same matcher delivery uses. The body may be a JSON value or a string holding JSON.
 */
export async function testFilterPolicy(
  pool: Pool,
  input: { topic?: string; message: unknown; attributes?: Record<string, FilterAttributeValue> },
): Promise<FilterPolicyVerdict[]> {
  if (input.topic !== undefined) {
    const { rowCount } = await pool.query('SELECT 1 FROM rowcast.topics WHERE name = $1', [input.topic]);
    if (!rowCount) throw await notDeclared(pool, 'topic', input.topic);
  }
  const { rows } = await pool.query<{
    name: string;
    topic: string;
    filter_policy: object | null;
    filter_scope: FilterPolicyScope;
  }>(
    'SELECT name, topic, filter_policy, filter_scope FROM rowcast.subscriptions WHERE $1::text IS NULL OR topic = $1 ORDER BY topic, name',
    [input.topic ?? null],
  );
  let body = input.message;
  if (typeof input.message === 'string') {
    const text = input.message;
    try {
      body = JSON.parse(text);
    } catch (err) {
      // A plain-text body: only attribute policies (and empty ones) can match it. What looks like JSON was meant to be.
      if (/^\s*[{[]/.test(text)) {
        throw new RowcastError(
          ErrorCodes.INVALID_ARGUMENT,
          `Invalid request body: message is not valid JSON (${(err as Error).message}); fix it, or send plain text that does not start with { or [.`,
        );
      }
    }
  }
  const attributes = input.attributes ?? {};
  return rows.map((r) => {
    if (!r.filter_policy)
      return {
        name: r.name,
        topic: r.topic,
        matched: true,
        reason: 'no filter policy: receives every message of its topic',
      };
    const message = { attributes, body: r.filter_scope === 'MessageBody' ? body : undefined };
    const matched = matchesFilterPolicy(r.filter_policy, message, r.filter_scope);
    const on = `on the message ${r.filter_scope === 'MessageBody' ? 'body' : 'attributes'}`;
    return matched
      ? {
          name: r.name,
          topic: r.topic,
          matched,
          reason: `its filter policy (${on}) matches: ${whyMatched(r.filter_policy as Record<string, unknown>, message, r.filter_scope).join('; ')}`,
        }
      : {
          name: r.name,
          topic: r.topic,
          matched,
          reason: `its filter policy (${on}) does not match: ${JSON.stringify(r.filter_policy)}`,
        };
  });
}

/**
 * Why a matching policy matched, one clause per key it tests: `op is "INSERT", one of ["INSERT"]`. Of a "$or", the
 * first branch that matches on its own is explained.
 */
function whyMatched(
  policy: Record<string, unknown>,
  message: FilterMessage,
  scope: FilterPolicyScope,
  path: string[] = [],
): string[] {
  const valueAt = (keys: string[]): unknown => {
    let v: unknown = scope === 'MessageBody' ? message.body : message.attributes;
    for (const k of keys) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v;
  };
  const nest = (keys: string[], inner: Record<string, unknown>): Record<string, unknown> =>
    keys.reduceRight((acc, k) => ({ [k]: acc }), inner);
  return Object.entries(policy).flatMap(([key, value]): string[] => {
    if (key === '$or' && Array.isArray(value)) {
      const branch = value.find((b) =>
        matchesFilterPolicy(nest(path, b as Record<string, unknown>), message, scope),
      ) as Record<string, unknown> | undefined;
      return branch ? whyMatched(branch, message, scope, path) : [];
    }
    if (!Array.isArray(value))
      return value !== null && typeof value === 'object'
        ? whyMatched(value as Record<string, unknown>, message, scope, [...path, key])
        : [];
    const found = valueAt([...path, key]);
    const plain = value.every((c) => c === null || typeof c !== 'object');
    return [
      `${[...path, key].join('.')} is ${found === undefined ? 'absent' : JSON.stringify(found)}, ${plain ? 'one of' : 'which passes'} ${JSON.stringify(value)}`,
    ];
  });
}

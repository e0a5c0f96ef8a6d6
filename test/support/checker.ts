import type { ReceivedRequest } from './webhook-receiver.js';

/**
 * The fault suite's checker: given the keys whose rows were committed (read back from the database, the only
 * truth after a crash) and the requests a WebhookReceiver saw, it finds what is missing, what arrived twice, and
 * whether every copy of one event carried the same webhook-id (the subscriber's deduplication key).
 */
export interface CheckOptions {
  /** Keys of the rows that committed (e.g. SELECT id FROM items). */
  committed: Iterable<string | number>;
  requests: readonly ReceivedRequest[];
  /** The key a request carries; default: the captured row's id (body.after.id). */
  keyOf?: (r: ReceivedRequest) => string | number | undefined;
  /**
   * Per-group order (optional), strict: no request (any attempt) for a group's next position may arrive before the
   * previous position was answered 2xx. Positions are the group's distinct seqs among the requests.
   */
  order?: { groupOf: (r: ReceivedRequest) => string; seqOf: (r: ReceivedRequest) => number };
}

export interface CheckResult {
  committed: number;
  /** Distinct committed keys delivered with a 2xx answer. */
  delivered: number;
  /** Requests answered 2xx. */
  okRequests: number;
  /** All requests (including failed attempts). */
  requests: number;
  /** 2xx requests beyond the first per key. */
  duplicates: number;
  missing: string[];
  /** Delivered keys that never committed. */
  unexpected: string[];
  /** Keys delivered under more than one webhook-id. */
  mixedIds: string[];
  orderViolations: string[];
  ok: boolean;
}

const defaultKey = (r: ReceivedRequest) => r.json?.body?.after?.id as string | number | undefined;

export function checkDeliveries(options: CheckOptions): CheckResult {
  const keyOf = options.keyOf ?? defaultKey;
  const committed = new Set([...options.committed].map(String));
  const ok = options.requests.filter((r) => r.status >= 200 && r.status < 300);
  const idsPerKey = new Map<string, Set<string>>();
  const countPerKey = new Map<string, number>();
  for (const r of ok) {
    const raw = keyOf(r);
    const key = raw === undefined ? `(no key: request ${r.n})` : String(raw);
    countPerKey.set(key, (countPerKey.get(key) ?? 0) + 1);
    const ids = idsPerKey.get(key) ?? new Set<string>();
    ids.add(String(r.headers['webhook-id']));
    idsPerKey.set(key, ids);
  }
  const missing = [...committed].filter((k) => !countPerKey.has(k));
  const unexpected = [...countPerKey.keys()].filter((k) => !committed.has(k));
  const mixedIds = [...idsPerKey].filter(([, ids]) => ids.size > 1).map(([k, ids]) => `${k}: ${[...ids].join(', ')}`);
  let duplicates = 0;
  for (const n of countPerKey.values()) duplicates += n - 1;

  const orderViolations: string[] = [];
  if (options.order) {
    const { groupOf, seqOf } = options.order;
    const keyed = options.requests.filter((r) => keyOf(r) !== undefined);
    // Per group and seq: how many requests had arrived when its first 2xx answer was written (Infinity: none yet).
    const firstOk = new Map<string, Map<number, number>>();
    for (const r of keyed) {
      const group = groupOf(r);
      const seq = seqOf(r);
      const bySeq = firstOk.get(group) ?? new Map<number, number>();
      firstOk.set(group, bySeq);
      const answered = r.status >= 200 && r.status < 300 ? (r.answeredAfterRequests ?? r.n) : Infinity;
      bySeq.set(seq, Math.min(bySeq.get(seq) ?? Infinity, answered));
    }
    const previous = new Map<string, Map<number, number>>();
    for (const [group, bySeq] of firstOk) {
      const seqs = [...bySeq.keys()].sort((a, b) => a - b);
      previous.set(group, new Map(seqs.slice(1).map((seq, i) => [seq, seqs[i]!])));
    }
    for (const r of [...keyed].sort((a, b) => a.n - b.n)) {
      const group = groupOf(r);
      const seq = seqOf(r);
      const prev = previous.get(group)!.get(seq);
      if (prev !== undefined && !(firstOk.get(group)!.get(prev)! < r.n))
        orderViolations.push(`group ${group}: ${seq} requested (request ${r.n}) before ${prev} was answered 2xx`);
    }
  }
  const delivered = [...countPerKey.keys()].filter((k) => committed.has(k)).length;
  return {
    committed: committed.size,
    delivered,
    okRequests: ok.length,
    requests: options.requests.length,
    duplicates,
    missing,
    unexpected,
    mixedIds,
    orderViolations,
    ok: missing.length === 0 && unexpected.length === 0 && mixedIds.length === 0 && orderViolations.length === 0,
  };
}

/** checkDeliveries, throwing a readable error when something is missing, unexpected, mixed or out of order. */
export function assertDeliveries(options: CheckOptions): CheckResult {
  const result = checkDeliveries(options);
  // A scenario whose writes all failed would pass every other check without testing anything.
  if (result.committed === 0)
    throw new Error('delivery check failed: nothing committed, so the scenario tested nothing');
  if (!result.ok) {
    const head = (xs: string[]) =>
      `${xs.length}${xs.length ? ` (${xs.slice(0, 10).join('; ')}${xs.length > 10 ? '; …' : ''})` : ''}`;
    throw new Error(
      `delivery check failed: committed ${result.committed}, delivered ${result.delivered}; missing ${head(result.missing)}; ` +
        `unexpected ${head(result.unexpected)}; duplicates under another webhook-id ${head(result.mixedIds)}; out of order ${head(result.orderViolations)}`,
    );
  }
  return result;
}

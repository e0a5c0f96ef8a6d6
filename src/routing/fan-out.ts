import type { PoolClient } from '../store/pool.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import { LEASE_COLUMNS, type LogHorizon } from '../store/log-leases.js';
import type { SqlRow } from '../store/sql.js';
import type { OutboundMessage } from '../model/sink.js';
import { type FilterPolicyScope, messagePassesFilter } from '../model/filter-policy/filter-policy.js';

/*
 * Fan-out: a new message becomes one delivery per subscription of its topic whose filter policy (if any) matches.
 * The SQL fragments below work on a CTE `m` of new messages (id, topic, attributes, body, content_type, group_key,
 * event_id, seq), so routing and publishing share them. Subscriptions without a filter policy get their
 * deliveries in SQL; filtered ones are returned as candidates and decided here, in the same transaction.
 * Subscriptions waiting for SNS's confirmation, or unsubscribed, get nothing (sns_state; src/delivery/sns-envelope/).
 * On FIFO topics a delivery carries its group and its place in the order: a capture's event id (commit order per
 * row), else the message's publish sequence.
 */

export const DELIVERY_ORDER = `CASE WHEN t.fifo THEN coalesce(m.group_key, '') END AS group_key, coalesce(m.event_id, m.seq) AS seq`;

/**
 * A message over its topic's size limit on a topic that rejects large messages cannot be delivered: its deliveries
 * are dead at once, with an error that says what to do (functions are refused earlier, at publish).
 */
const TOO_LARGE = `octet_length(m.body) > t.max_message_size AND t.large_messages = 'reject'`;
const DELIVERY_STATE = `CASE WHEN ${TOO_LARGE} THEN 'dead' ELSE 'pending' END AS state,
  CASE WHEN ${TOO_LARGE} THEN format('message of %s bytes is over topic %s''s maxMessageSize (%s bytes): raise it or set largeMessages: ''claim-check'', apply, then redrive', octet_length(m.body), t.name, t.max_message_size) END AS last_error`;

/**
 * A subscription that reads its topic through a cursor (migration 030) gets no delivery rows here: it reads the
 * messages themselves. A message on such a topic is not counted as unmatched (its filter policy, if any, is applied
 * at delivery).
 */
const READ_BY_CURSOR = `EXISTS (SELECT 1 FROM rowcast.subscriptions s WHERE s.topic = m.topic AND s.cursor)`;

/** The subscriptions `s` that get delivery rows: confirmed (SNS's handshake), not reading through a cursor. */
const GETS_ROWS = `s.sns_state = 'confirmed' AND NOT s.cursor`;

/**
 * Whether a subscription with a filter policy gets rows from the messages of these topics (a SQL list): the
 * one-statement forms of routing and publishing route nothing then, and take the path that runs the matcher.
 */
export const filteredRowsSubscriptionOn = (topics: string) =>
  `EXISTS (SELECT 1 FROM rowcast.subscriptions s WHERE s.filter_policy IS NOT NULL AND ${GETS_ROWS} AND s.topic IN (${topics}))`;

/** The `d` CTE: deliveries for subscriptions without a filter policy. */
export const UNFILTERED_DELIVERIES_SQL = `
  INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, last_error)
  SELECT m.id, s.name, ${DELIVERY_ORDER}, ${DELIVERY_STATE}
    FROM m JOIN rowcast.topics t ON t.name = m.topic
    JOIN rowcast.subscriptions s ON s.topic = m.topic AND s.filter_policy IS NULL AND ${GETS_ROWS}
  RETURNING message_id`;

/** Deliveries the calling process can start now, per subscription, and the lease they get. */
export interface DirectClaim {
  wanted: Map<string, number>;
  leaseMs: number;
  owner: string;
  /** Taken before the statement runs: its leases count from no earlier than this. */
  claimedAt: number;
  /** Where the process's cursors see the log settled (routing leases new messages to them from there). */
  horizon?: LogHorizon;
}

/** A process's delivery worker, as statements that create deliveries see it: it may take them leased at once. */
export interface DirectClaimant {
  /** Some subscription reads its topic through a cursor: any new message may be work without a delivery row. */
  readonly readsLog: boolean;
  directClaim(): DirectClaim | undefined;
  /** `leased`: routing's lease of new messages to the process's cursors (rowcast.lease_log_ranges' rows). */
  adoptClaimed(claimed: ClaimedDelivery[], direct: DirectClaim, leased?: SqlRow[]): void;
}

/** What a statement that appended messages created, and what of it it leased to the calling process. */
export interface AppendedWork {
  deliveries: number;
  claimed: readonly unknown[];
  cursorsCovered: boolean;
}

/**
 * Whether an appending statement left work for the claims, so that the delivery worker must look: delivery rows
 * beyond those it leased here, or new messages (`appended`) of a topic some cursor of the process was not leased
 * to the log's end. Without a claimant to ask, any message may be a cursor's.
 */
export function leftForClaims(
  claimant: DirectClaimant | null | undefined,
  work: AppendedWork,
  appended: boolean,
): boolean {
  return work.deliveries > work.claimed.length || (appended && (claimant?.readsLog ?? true) && !work.cursorsCovered);
}

/** The values of a statement's direct-claim parameters, in DirectClaimParams' order (nothing leased without one). */
export function directClaimValues(direct: DirectClaim | undefined): unknown[] {
  const wanted = [...(direct?.wanted ?? [])].filter(([, n]) => n > 0);
  return [wanted.map(([name]) => name), wanted.map(([, n]) => n), direct?.leaseMs ?? 0, direct?.owner ?? null];
}

/** Placeholders of a statement's direct-claim parameters: subscription names, how many each, lease (ms), owner. */
export interface DirectClaimParams {
  subscriptions: string;
  counts: string;
  leaseMs: string;
  owner: string;
}

/** The horizon's parameters of a direct lease (settled, barrier seq, barrier writers), after directClaimValues'. */
export function directLeaseValues(direct: DirectClaim | undefined): unknown[] {
  const horizon = direct?.horizon;
  return [horizon?.settled ?? '0', horizon?.barrierSeq ?? null, horizon?.barrierWriters ?? []];
}

/**
 * The CTEs `routed`, `log_readers`, `readers` and `leased`, after `m`: the caller's cursors of the new messages' topics lease what
 * they have room for (rowcast.lease_log_ranges' form for a statement that appended messages, migration 035: a
 * VOLATILE function, whose statements see this statement's messages; they commit with the range or not at all).
 * `horizon`: the placeholders of directLeaseValues' three; `appended`: a query of the topics appended to and the
 * seqs each row drew (`topic`, `seqs`), if not just the rows of `m` (routing's segments, migration 042). Every seq
 * this statement drew is one of those: the lease is told their number, so that it need not look for other writers
 * when the sequence moved by no more (migration 049).
 */
export function directLeaseSql(
  p: DirectClaimParams & { horizon: [string, string, string]; appended?: string },
): string {
  const [settled, barrierSeq, barrierWriters] = p.horizon;
  return `routed AS MATERIALIZED (
  -- An aggregate reads what was appended whole: it is all inserted before the lease reads the log.
  SELECT array_agg(DISTINCT a.topic) AS topics, coalesce(sum(a.seqs), 0)::bigint AS seqs
    FROM (${p.appended ?? 'SELECT topic, 1 AS seqs FROM m'}) a
), log_readers AS (
  -- The active subscriptions of those topics that read the log: through a cursor, or draining theirs after a
  -- switch back to rows (never leased here).
  SELECT x.name, x.cursor FROM rowcast.subscriptions x
   WHERE (x.cursor OR EXISTS (SELECT 1 FROM rowcast.cursors c WHERE c.subscription = x.name))
     AND x.state = 'active' AND x.topic = ANY ((SELECT topics FROM routed)::text[])
), readers AS (
  SELECT array_agg(w.s ORDER BY w.s) AS subs, array_agg(w.n ORDER BY w.s) AS counts
    FROM unnest(${p.subscriptions}::text[], ${p.counts}::int[]) AS w(s, n) JOIN log_readers x ON x.name = w.s
   WHERE x.cursor
  HAVING count(*) > 0
), leased AS (
  SELECT ${LEASE_COLUMNS}, l.ordinality
    FROM readers r CROSS JOIN LATERAL
         rowcast.lease_log_ranges(r.subs, r.counts, ${p.leaseMs}::int, ${p.owner}::text, ${settled}::bigint, ${barrierSeq}::bigint, ${barrierWriters}::text[], true,
                                  own_seqs => (SELECT seqs FROM routed))
         WITH ORDINALITY l
)`;
}

/**
 * With directLeaseSql's CTEs: the lease's rows (horizon first), and whether each cursor of the new messages' topics
 * got a range up to the horizon while the horizon is the sequence's end (nothing of them is left to claim). A cursor
 * draining after a switch back to rows is never leased here, so its topic is never covered: its drain is the claims'.
 */
export const DIRECTLY_LEASED_SQL = `(SELECT json_agg(l ORDER BY l.ordinality) FROM leased l) AS leased,
       (SELECT coalesce(bool_and(EXISTS (
                 SELECT 1 FROM leased h JOIN leased l ON l.kind = 'message' AND l.subscription = x.name AND l.to_seq = h.from_seq
                  WHERE h.kind = 'horizon' AND h.from_seq = h.to_seq)), true)
          FROM log_readers x) AS cursors_covered`;

/**
 * The `d` CTE with a direct claim: up to the given number of new deliveries per subscription are inserted already
 * leased to the calling process (in flight, attempt 1, a lease token of their own), which sends them without a
 * claim's round trip — on an idle chain, a millisecond of the commit → webhook latency, and under load one write
 * per delivery fewer. Not on FIFO topics (a group's next delivery may only be claimed once the one before it is
 * done) nor for dead-on-arrival ones, nor while older deliveries of the subscription are due (claims take those
 * oldest first; leasing the new ones would let them overtake a backlog, and under overload starve it).
 */
export const directClaimDeliveriesSql = (p: DirectClaimParams) => `
  INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, last_error, attempts, available_at, lease_owner, lease)
  SELECT x.id, x.name, x.group_key, x.seq, CASE WHEN x.direct THEN 'in_flight' ELSE x.state END, x.last_error,
         CASE WHEN x.direct THEN 1 ELSE 0 END, CASE WHEN x.direct THEN now() + ${p.leaseMs} * interval '1 millisecond' ELSE now() END,
         CASE WHEN x.direct THEN ${p.owner}::text END, CASE WHEN x.direct THEN gen_random_uuid() END
    FROM (SELECT y.*, y.state = 'pending' AND y.active AND y.group_key IS NULL AND y.rank <= coalesce(w.n, 0) AS direct
            -- Only to an active subscription: a pause holds from its commit, not from the caller's reload.
            FROM (SELECT m.id, s.name, ${DELIVERY_ORDER}, ${DELIVERY_STATE}, s.state = 'active' AS active,
                         row_number() OVER (PARTITION BY s.name ORDER BY m.seq) AS rank
                    FROM m JOIN rowcast.topics t ON t.name = m.topic
                    JOIN rowcast.subscriptions s ON s.topic = m.topic AND s.filter_policy IS NULL AND ${GETS_ROWS}) y
            LEFT JOIN (SELECT w.subscription, w.n FROM unnest(${p.subscriptions}::text[], ${p.counts}::int[]) AS w(subscription, n)
                        -- Not while older deliveries of the subscription are due: new ones must not overtake them.
                        WHERE NOT EXISTS (SELECT 1 FROM rowcast.deliveries o
                                           WHERE o.subscription = w.subscription AND o.state IN ('pending', 'in_flight') AND o.available_at <= now())) w
              ON w.subscription = y.name) x
  RETURNING id, message_id, subscription, state, attempts, lease`;

/**
 * The deliveries `d` claimed directly, as the claim returns them (json), with their messages from `m`, which must
 * return subject, trace and created_at too.
 */
export const DIRECTLY_CLAIMED_SQL = `(SELECT json_agg(json_build_object(
    'delivery_id', d.id::text, 'subscription', d.subscription, 'attempt', d.attempts, 'lease', d.lease, 'message_id', m.id::text, 'topic', m.topic,
    'subject', m.subject, 'body', m.body, 'content_type', m.content_type, 'attributes', m.attributes, 'trace', m.trace,
    'created_at', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'max_message_size', t.max_message_size, 'large_messages', t.large_messages, 'claim_check_ttl_ms', t.claim_check_ttl_ms))
   FROM d JOIN m ON m.id = d.message_id JOIN rowcast.topics t ON t.name = m.topic WHERE d.state = 'in_flight')`;

/** The body subscription `s` is sent of message `m` (SNS's MessageStructure 'json': its protocol's, else the default). */
export const PROTOCOL_BODY = `CASE WHEN m.protocol_bodies IS NULL THEN m.body ELSE coalesce(m.protocol_bodies ->> s.protocol, m.body) END AS body`;

/** The `c` CTE: each message with each filtered subscription of its topic, for matchFilters(); `m` returns protocol_bodies. */
export const FILTER_CANDIDATES_SQL = `
  SELECT m.id::text AS message_id, m.topic, s.name AS subscription, s.filter_policy AS policy, s.filter_scope AS scope,
         -- MessageStructure 'json': the message the subscription's protocol gets, as the cursor and SNS match it.
         m.attributes, ${PROTOCOL_BODY}, m.content_type, ${DELIVERY_ORDER}, ${DELIVERY_STATE}
    FROM m JOIN rowcast.topics t ON t.name = m.topic
    JOIN rowcast.subscriptions s ON s.topic = m.topic AND s.filter_policy IS NOT NULL AND ${GETS_ROWS}`;

/** The final SELECT of a statement with CTEs `m`, `d` and `c`. */
export const FAN_OUT_RESULT_SQL = `
  SELECT (SELECT count(*) FROM d)::int AS unfiltered,
         (SELECT json_agg(c) FROM c) AS candidates,
         (SELECT json_agg(json_build_object('id', m.id, 'topic', m.topic)) FROM m
           WHERE NOT EXISTS (SELECT 1 FROM d WHERE d.message_id = m.id) AND NOT ${READ_BY_CURSOR}) AS without_delivery`;

/**
 * The `u` CTE of the one-statement path (no filtered subscription among the messages' topics, so `d` is every
 * delivery there is): counts the messages nobody took on their topic.
 */
export const COUNT_UNMATCHED_SQL = `
  UPDATE rowcast.topics t SET unmatched_messages = t.unmatched_messages + u.n
    FROM (SELECT m.topic, count(*) AS n FROM m WHERE m.id NOT IN (SELECT message_id FROM d) AND NOT ${READ_BY_CURSOR} GROUP BY m.topic) u
   WHERE t.name = u.topic
  RETURNING 1`;

export interface FilterCandidate {
  message_id: string;
  topic: string;
  subscription: string;
  policy: object;
  scope: FilterPolicyScope;
  attributes: Record<string, string>;
  body: string;
  content_type: string;
  group_key: string | null;
  seq: number;
  state: 'pending' | 'dead';
  last_error: string | null;
}

export interface FanOutRow {
  unfiltered: number;
  candidates: FilterCandidate[] | null;
  /** Messages that got no unfiltered delivery: unmatched unless a filter policy takes them. */
  without_delivery: { id: string; topic: string }[] | null;
}

/** The candidates the filter policies let through. */
export function matchFilters(candidates: FilterCandidate[]): FilterCandidate[] {
  return candidates.filter((c) =>
    messagePassesFilter(c.policy, c.scope, { attributes: c.attributes, body: c.body, contentType: c.content_type }),
  );
}

/** Applies the filter policies to the candidates, inserts what matched, counts what nobody took. */
export async function finishFanOut(client: PoolClient, row: FanOutRow): Promise<number> {
  const matched = matchFilters(row.candidates ?? []);
  if (matched.length) {
    await client.query(
      `INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, last_error)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])`,
      [
        matched.map((c) => c.message_id),
        matched.map((c) => c.subscription),
        matched.map((c) => c.group_key),
        matched.map((c) => c.seq),
        matched.map((c) => c.state),
        matched.map((c) => c.last_error),
      ],
    );
  }
  const took = new Set(matched.map((c) => c.message_id));
  const unmatched = (row.without_delivery ?? []).filter((m) => !took.has(m.id)).map((m) => m.topic);
  // Messages nobody took (no subscription, or every filter said no) are counted per topic, not lost silently.
  if (unmatched.length) {
    await client.query(
      `UPDATE rowcast.topics t SET unmatched_messages = t.unmatched_messages + u.n
         FROM (SELECT topic, count(*) AS n FROM unnest($1::text[]) AS topic GROUP BY topic) u WHERE t.name = u.topic`,
      [unmatched],
    );
  }
  return row.unfiltered + matched.length;
}

/** A message to publish: what subscribers will receive (less its timestamp and trace, set on insert), and its FIFO keys. */
export interface NewMessage extends Omit<OutboundMessage, 'timestamp' | 'trace'> {
  groupKey: string | null;
  /** FIFO topics drop a message whose dedup key was seen within the topic's window. */
  dedupKey?: string | null;
  /** SNS's MessageStructure 'json': the message per subscription protocol (body is the default). */
  protocolBodies?: Record<string, string> | null;
  /** SNS data types of the attributes published through the SNS API (String, Number, Binary, String.Array). */
  attributeTypes?: Record<string, string> | null;
}

/**
 * Publishes messages inside the caller's transaction: FIFO duplicates dropped, the rest inserted and fanned out.
 * Returns the number of deliveries.
 */
export async function publishMessages(
  client: PoolClient,
  messages: NewMessage[],
  trace: string | null,
): Promise<number> {
  const fresh = await dropDuplicates(client, messages);
  if (!fresh.length) return 0;
  const { rows } = await client.query<FanOutRow>(
    `WITH m AS (
       INSERT INTO rowcast.messages (id, topic, subject, body, content_type, attributes, group_key, dedup_key, protocol_bodies, attribute_types, trace)
       SELECT *, $11::text FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[])
       RETURNING id, topic, attributes, body, protocol_bodies, content_type, group_key, event_id, seq
     ), d AS (${UNFILTERED_DELIVERIES_SQL}),
     c AS (${FILTER_CANDIDATES_SQL})
     ${FAN_OUT_RESULT_SQL}`,
    [
      fresh.map((m) => m.id),
      fresh.map((m) => m.topic),
      fresh.map((m) => m.subject),
      fresh.map((m) => m.body),
      fresh.map((m) => m.contentType),
      fresh.map((m) => JSON.stringify(m.attributes)),
      fresh.map((m) => m.groupKey),
      fresh.map((m) => m.dedupKey ?? null),
      fresh.map((m) => (m.protocolBodies ? JSON.stringify(m.protocolBodies) : null)),
      fresh.map((m) => (m.attributeTypes ? JSON.stringify(m.attributeTypes) : null)),
      trace,
    ],
  );
  return finishFanOut(client, rows[0]!);
}

/**
 * FIFO deduplication: records each (topic, dedup key) for the topic's window; a message whose key is still
 * recorded — or repeated within this batch — is dropped. Other topics ignore dedup keys, as SNS does.
 */
async function dropDuplicates(client: PoolClient, messages: NewMessage[]): Promise<NewMessage[]> {
  const keyed = messages.filter((m) => m.dedupKey);
  if (!keyed.length) return messages;
  const firstOfKey = new Map<string, NewMessage>();
  for (const m of keyed)
    if (!firstOfKey.has(`${m.topic}\0${m.dedupKey}`)) firstOfKey.set(`${m.topic}\0${m.dedupKey}`, m);
  const candidates = [...firstOfKey.values()];
  const { rows } = await client.query<{ topic: string; dedup_key: string; fifo: boolean; fresh: boolean }>(
    // The record names the message it let through, which SNS's Publish answers a duplicate with.
    `WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) AS k(topic, dedup_key, message_id)),
     recorded AS (
       INSERT INTO rowcast.dedup (topic, dedup_key, expires_at, message_id)
       SELECT k.topic, k.dedup_key, now() + t.dedup_window_ms * interval '1 millisecond', k.message_id
         FROM k JOIN rowcast.topics t ON t.name = k.topic AND t.fifo
       ON CONFLICT (topic, dedup_key) DO UPDATE SET expires_at = EXCLUDED.expires_at, message_id = EXCLUDED.message_id WHERE rowcast.dedup.expires_at < now()
       RETURNING topic, dedup_key)
     SELECT k.topic, k.dedup_key, coalesce(t.fifo, false) AS fifo,
            EXISTS (SELECT 1 FROM recorded r WHERE r.topic = k.topic AND r.dedup_key = k.dedup_key) AS fresh
       FROM k LEFT JOIN rowcast.topics t ON t.name = k.topic`,
    [candidates.map((m) => m.topic), candidates.map((m) => m.dedupKey), candidates.map((m) => m.id)],
  );
  const verdict = new Map(rows.map((r) => [`${r.topic}\0${r.dedup_key}`, r]));
  return messages.filter((m) => {
    if (!m.dedupKey) return true;
    const key = `${m.topic}\0${m.dedupKey}`;
    const v = verdict.get(key)!;
    return !v.fifo || (v.fresh && firstOfKey.get(key) === m);
  });
}

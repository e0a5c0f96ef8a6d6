import { type Pool, type PoolClient, withTransaction } from '../store/pool.js';
import { leaseFence, prepared, type SqlRow } from '../store/sql.js';
import { type ClaimedDelivery, toClaimedDelivery } from '../delivery/delivery-store.js';
import {
  COUNT_UNMATCHED_SQL,
  DIRECTLY_CLAIMED_SQL,
  DIRECTLY_LEASED_SQL,
  type DirectClaim,
  directClaimDeliveriesSql,
  directClaimValues,
  directLeaseSql,
  directLeaseValues,
  filteredRowsSubscriptionOn,
  publishMessages,
} from '../routing/fan-out.js';
import { type ClaimedInvocation, type ClaimedInvocationRow, toClaimedInvocation } from '../store/invocations.js';

export { type ClaimedInvocation, type ClaimedInvocationRow, toClaimedInvocation } from '../store/invocations.js';
import type { PublishedMessage, TopicRules } from '../model/thread-protocol.js';

/**
 * A function's concurrency is global: it has `limit` slots, each a session-level advisory lock
 * (hashtext('rowcast.function:' || name), slot number) held on one connection of the process that runs handlers
 * in them. Over all processes at most `limit` are held, so at most `limit` handlers run at once; a process that
 * dies (or whose connection drops) loses its slots at once, with no lease to wait out.
 */
const SLOT_KEY = `hashtext('rowcast.function:' || $1)`;

export interface ClaimOutcome {
  /** Slots taken by this claim (besides those already held). */
  taken: number[];
  items: ClaimedInvocation[];
}

const claimStatement = prepared(
  'claim_invocations',
  `WITH taken AS (
       SELECT coalesce(array_agg(s), '{}') AS slots FROM (
         SELECT s FROM generate_series(0, $3::int - 1) s
          -- A CASE, since the planner orders AND-ed conditions by cost, and in a generic plan it ran the lock first:
          -- a held slot locked again (session locks nest) stays locked after its one release, pinned to this connection.
          -- No slot is taken while nothing is due and nothing of it waits in this process ($7): an idle function
          -- woken for nothing would take one and give it back.
          WHERE CASE WHEN s = ANY ($4::int[]) THEN false
                     WHEN NOT $7::boolean AND NOT EXISTS (SELECT 1 FROM rowcast.invocations i
                                       WHERE i.function = $1 AND i.state IN ('pending', 'in_flight') AND i.available_at <= now())
                       THEN false
                     ELSE pg_try_advisory_lock(${SLOT_KEY}, s) END
          LIMIT greatest(0, $3::int - cardinality($4::int[]))) x
     ), claimed AS (
       UPDATE rowcast.invocations i
          SET state = 'in_flight', attempts = i.attempts + 1, available_at = now() + $5 * interval '1 millisecond',
              lease_owner = $6, lease = gen_random_uuid(), started_at = coalesce(i.started_at, now())
        WHERE i.id = ANY (ARRAY(
                SELECT rowcast.next_invocations($1, CASE WHEN cardinality($4::int[]) + cardinality((SELECT slots FROM taken)) > 0 THEN $2::int ELSE 0 END)))
       RETURNING i.id::text, i.attempts, i.lease::text, i.payload, i.client_context, i.trace, i.available_at, i.source,
                 (extract(epoch FROM now() - i.created_at) * 1000)::bigint AS age_ms
     )
     SELECT (SELECT slots FROM taken) AS taken,
            (SELECT json_agg(c ORDER BY c.age_ms DESC) FROM claimed c) AS items`,
);

/**
 * In one statement, on the connection that holds the function's slots: takes free slots up to the limit, then —
 * if the process holds any — claims up to `n` due invocations, leased to `owner` for leaseMs. Invocations can be
 * claimed well ahead of the slots (the process runs them as slots free up), so one round trip serves hundreds.
 */
export async function claimInvocations(
  client: PoolClient,
  fn: string,
  n: number,
  /** `waiting`: invocations of it wait in this process for slots (leased by routing after its slots went back). */
  slots: { held: number[]; limit: number; waiting?: boolean },
  leaseMs: number,
  owner: string,
): Promise<ClaimOutcome> {
  const { rows } = await client.query(
    claimStatement([fn, n, slots.limit, slots.held, leaseMs, owner, slots.waiting ?? false]),
  );
  const row = rows[0]!;
  return {
    taken: row.taken as number[],
    items: ((row.items ?? []) as ClaimedInvocationRow[]).map((r) => toClaimedInvocation(fn, r)),
  };
}

/** Gives a function's slots back (the process has nothing of it left to run). */
export async function releaseSlots(client: PoolClient, fn: string, slots: number[]): Promise<void> {
  if (slots.length)
    await client.query(`SELECT pg_advisory_unlock(${SLOT_KEY}, s) FROM unnest($2::int[]) s`, [fn, slots]);
}

export interface InvocationResult {
  id: string;
  /** The attempt and its lease: a result whose lease was lost (taken over) is not recorded. */
  attempt: number;
  lease: string;
  durationMs: number;
  state: 'done' | 'pending' | 'failed';
  availableAt?: Date;
  error?: string;
  result?: string | null;
  /** done: what the handler published; failed: the on-failure record, if the function has a destination. */
  messages: PublishedMessage[];
  trace: string | null;
  /** A caller waits for this answer (RequestResponse): the batch that records it commits with a WAL flush. */
  synchronous?: boolean;
}

export interface CompletionOutcome {
  /** Ids of the invocations whose results were recorded; the others had lost their lease and wrote nothing. */
  recorded: Set<string>;
  deliveries: number;
  /** New deliveries leased to the caller at once (the DirectClaim passed in). */
  claimed: ClaimedDelivery[];
  /** New messages leased to the caller's cursors at once (rowcast.lease_log_ranges' rows, horizon first), or none. */
  leased: SqlRow[];
  /** Every cursor of the new messages' topics was leased them all (nothing of them is left to claim). */
  cursorsCovered: boolean;
}

/**
 * Records many attempts' outcomes and writes the messages they published in the same transaction, so that a
 * successful invocation publishes exactly once and a failed one publishes nothing. A result whose lease was lost
 * (another process took the invocation over) is not recorded, and its messages are not written.
 *
 * Usually one statement: results, messages, deliveries and the count of messages nobody took. A batch with FIFO
 * dedup keys, or one publishing to a topic with filtered subscriptions (the statement then writes nothing and
 * says so), or with what only SDK publishes carry, goes through a transaction in which Node applies dedup and filter policies.
 */
export async function completeInvocations(
  pool: Pool,
  results: InvocationResult[],
  direct?: DirectClaim,
): Promise<CompletionOutcome> {
  if (!results.length) return { recorded: new Set(), deliveries: 0, claimed: [], leased: [], cursorsCovered: true };
  // The one statement writes neither FIFO dedup keys nor what only SDK publishes carry (per-protocol bodies, attribute types).
  if (!results.some((r) => r.messages.some((m) => m.dedupKey || m.protocolBodies || m.attributeTypes))) {
    const { rows } = await pool.query(
      completeInOneStatement([
        ...completionParams(results),
        ...directClaimValues(direct),
        ...directLeaseValues(direct),
        flushed(results),
      ]),
    );
    const row = rows[0]!;
    if (!row.filtered)
      return {
        recorded: new Set(row.recorded as string[]),
        deliveries: row.deliveries,
        claimed: ((row.claimed ?? []) as Record<string, unknown>[]).map(toClaimedDelivery),
        leased: row.leased ?? [],
        cursorsCovered: row.cursors_covered,
      };
  }
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query(completeInTransaction([...completionParams(results), flushed(results)]));
    const recorded = new Set(rows[0]!.recorded as string[]);
    let deliveries = 0;
    // Messages carry their invocation's trace context: one publish per invocation that was recorded.
    for (const r of results)
      if (recorded.has(r.id) && r.messages.length) deliveries += await publishMessages(client, r.messages, r.trace);
    return { recorded, deliveries, claimed: [], leased: [], cursorsCovered: false };
  });
}

/**
 * With messages (oneStatement): the fan-out of unfiltered topics in SQL; without: the results only. The last
 * parameter says whether the commit waits for its WAL flush (flushed()); `commit_mode` is selected so that it runs.
 */
const completionSql = (withMessages: boolean) => `
WITH commit_mode AS MATERIALIZED (
  SELECT CASE WHEN ${withMessages ? '$26' : '$19'}::boolean THEN current_setting('synchronous_commit')
              ELSE set_config('synchronous_commit', 'off', true) END AS synchronous_commit
), r AS (
  SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::timestamptz[], $6::int[], $7::text[], $8::text[], $9::text[])
    AS r(id, attempt, lease, state, available_at, duration_ms, error, result, published)
), mi AS (
  SELECT * FROM unnest($10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::text[], $15::text[], $16::jsonb[], $17::text[], $18::text[])
    WITH ORDINALITY AS x(id, invocation, topic, subject, body, content_type, attributes, group_key, trace, ord)
), filtered AS (
  SELECT ${withMessages ? filteredRowsSubscriptionOn('SELECT topic FROM mi') : 'false'} AS yes
), done AS (
  UPDATE rowcast.invocations i
     SET state = r.state, available_at = coalesce(r.available_at, i.available_at), duration_ms = r.duration_ms,
         last_error = coalesce(r.error, i.last_error), result = r.result, published = string_to_array(r.published, ',')::uuid[],
         lease_owner = NULL, lease = NULL, finished_at = CASE WHEN r.state IN ('done', 'failed') THEN now() END
    FROM r
   -- Joined on the key alone, so that each result finds its row through the primary key. With "i.id = ANY ($1)"
   -- as well, the generic plan scanned the rows by that list and the results' unnest once per row: quadratic in
   -- the batch (200 results, 40,000 comparisons; half the statement's time).
   WHERE i.id = r.id AND ${leaseFence('i')} AND NOT (SELECT yes FROM filtered)
  RETURNING i.id
)${
  withMessages
    ? `, m AS (
  INSERT INTO rowcast.messages (id, topic, subject, body, content_type, attributes, group_key, trace)
  SELECT mi.id, mi.topic, mi.subject, mi.body, mi.content_type, mi.attributes, mi.group_key, mi.trace
    FROM mi WHERE mi.invocation IN (SELECT id FROM done) ORDER BY mi.ord
  RETURNING id, topic, subject, attributes, body, protocol_bodies, content_type, group_key, event_id, seq, trace, created_at
), d AS (${directClaimDeliveriesSql({ subscriptions: '$19', counts: '$20', leaseMs: '$21', owner: '$22' })}
), ${directLeaseSql({ subscriptions: '$19', counts: '$20', leaseMs: '$21', owner: '$22', horizon: ['$23', '$24', '$25'] })},
u AS (${COUNT_UNMATCHED_SQL})
SELECT (SELECT synchronous_commit FROM commit_mode), (SELECT yes FROM filtered) AS filtered, ARRAY(SELECT id::text FROM done) AS recorded,
       (SELECT count(*) FROM d)::int AS deliveries, (SELECT count(*) FROM u)::int AS unmatched_topics, ${DIRECTLY_CLAIMED_SQL} AS claimed,
       ${DIRECTLY_LEASED_SQL}`
    : `
SELECT (SELECT synchronous_commit FROM commit_mode), false AS filtered, ARRAY(SELECT id::text FROM done) AS recorded, 0 AS deliveries`
}`;

export const COMPLETION_SQL = completionSql(true);
const completeInOneStatement = prepared('complete_invocations', COMPLETION_SQL);
const completeInTransaction = prepared('complete_invocations_filtered', completionSql(false));

/**
 * Whether the results' commit waits for its WAL flush: only when a caller waits for one of them (RequestResponse),
 * who would otherwise read an answer a crash could take back. Otherwise a commit that a crash lost is redone:
 * the invocation is still leased, runs again, and publishes under the same ids (model/published-ids.ts).
 */
function flushed(results: InvocationResult[]): boolean {
  return results.some((r) => r.synchronous);
}

function completionParams(results: InvocationResult[]): unknown[] {
  const messages = results.flatMap((r) => r.messages.map((m) => ({ ...m, invocation: r.id, trace: r.trace })));
  return [
    results.map((r) => r.id),
    results.map((r) => r.attempt),
    results.map((r) => r.lease),
    results.map((r) => r.state),
    results.map((r) => r.availableAt ?? null),
    results.map((r) => Math.round(r.durationMs)),
    results.map((r) => r.error ?? null),
    results.map((r) => r.result ?? null),
    results.map((r) => (r.state === 'done' ? r.messages.map((m) => m.id).join(',') : null)),
    messages.map((m) => m.id),
    messages.map((m) => m.invocation),
    messages.map((m) => m.topic),
    messages.map((m) => m.subject),
    messages.map((m) => m.body),
    messages.map((m) => m.contentType),
    messages.map((m) => JSON.stringify(m.attributes)),
    messages.map((m) => m.groupKey),
    messages.map((m) => m.trace),
  ];
}

/**
 * Hands invocations back (shutdown, or claimed ahead and not started in time): due again at once, for this or
 * another process. An attempt that never started is not counted (the claim's bump of `attempts` is undone).
 */
export async function releaseInvocations(
  pool: Pool,
  items: { id: string; attempt: number; lease: string }[],
  started = true,
): Promise<void> {
  if (!items.length) return;
  await pool.query(
    `UPDATE rowcast.invocations i SET state = 'pending', available_at = now(), lease_owner = NULL, lease = NULL,
            attempts = i.attempts - CASE WHEN $4::boolean THEN 1 ELSE 0 END
       FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS r(id, attempt, lease)
      WHERE i.id = r.id AND ${leaseFence('i')}`,
    [items.map((i) => i.id), items.map((i) => i.attempt), items.map((i) => i.lease), !started],
  );
}

export async function listTopics(pool: Pool): Promise<Record<string, TopicRules>> {
  const { rows } = await pool.query<{
    name: string;
    max_message_size: number;
    large_messages: TopicRules['largeMessages'];
  }>('SELECT name, max_message_size, large_messages FROM rowcast.topics');
  return Object.fromEntries(
    rows.map((r) => [r.name, { maxMessageSize: r.max_message_size, largeMessages: r.large_messages }]),
  );
}

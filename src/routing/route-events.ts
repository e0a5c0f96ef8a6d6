import { type ClaimedInvocation, type ClaimedInvocationRow, toClaimedInvocation } from '../store/invocations.js';
import { type Pool, withTransaction } from '../store/pool.js';
import { prepared } from '../store/sql.js';
import { type ClaimedDelivery, toClaimedDelivery } from '../store/deliveries.js';
import {
  COUNT_UNMATCHED_SQL,
  DIRECTLY_CLAIMED_SQL,
  DIRECTLY_LEASED_SQL,
  directLeaseSql,
  directLeaseValues,
  type DirectClaim,
  directClaimDeliveriesSql,
  directClaimValues,
  FAN_OUT_RESULT_SQL,
  FILTER_CANDIDATES_SQL,
  filteredRowsSubscriptionOn,
  type FanOutRow,
  finishFanOut,
  UNFILTERED_DELIVERIES_SQL,
} from './fan-out.js';
import { ROUTE_LOCK } from '../store/advisory-locks.js';
import type { SqlRow } from '../store/sql.js';

export { ROUTE_LOCK };

export interface RouteResult {
  events: number;
  /** Another process was routing (this pass routed nothing): one router at a time keeps FIFO groups in order. */
  busy: boolean;
  deliveries: number;
  invocations: number;
  /** New deliveries leased to the caller at once (DirectClaim), to be sent by it. */
  claimed: ClaimedDelivery[];
  /** New messages leased to the caller's cursors at once (rowcast.lease_log_ranges' rows, horizon first), or none. */
  leased: SqlRow[];
  /** Every cursor of the routed topics was leased all the new messages (nothing of them is left to claim). */
  cursorsCovered: boolean;
  /** New invocations leased to the caller at once (DirectInvocationClaim), to be run by it. */
  claimedInvocations: ClaimedInvocation[];
}

/** Invocations the calling process can run now (in concurrency slots it holds), per function, and their leases. */
export interface DirectInvocationClaim {
  wanted: Map<string, { n: number; leaseMs: number }>;
  owner: string;
  /** Taken before the statement runs: its leases count from no earlier than this. */
  claimedAt: number;
}

/** A process's function worker, as routing sees it: it may take new invocations leased at once. */
export interface InvocationClaimant {
  directInvocationClaim(): DirectInvocationClaim | undefined;
  adoptInvocations(claimed: ClaimedInvocation[], direct: DirectInvocationClaim): void;
}

/**
 * Routes a batch of captured events: an event for a topic becomes a message and one delivery per subscription of
 * the topic (filter policies permitting); an event for a function becomes an invocation. Events are read by ticks
 * (migration 033): the events whose transactions committed between two snapshots, in id order, a batch at a time;
 * routing a batch moves the tick past it, so nothing is written per event but what it becomes. The commit does
 * not wait for its WAL flush (a flush per batch was most of the commit → webhook latency): the message and
 * invocation ids are derived from the event's id, so a routing that a PostgreSQL crash lost is redone with the same
 * ids, and a subscriber that already got the message sees it again under the same id, as at-least-once allows.
 *
 * Three forms, each tried when the one before it does not apply. Segments only (SEGMENTS_ONLY_SQL): a batch whose
 * events all go to topics that get segments, in one short statement; any other batch it leaves alone and says
 * `refused`, and routing keeps to the next form for a while. `oneStatement`: the whole batch in one autocommitted
 * statement, unmatched messages counted in SQL — unless a topic of the batch has a subscription with a filter
 * policy, in which case it routes nothing and says `filtered` (same snapshot, so no race with apply). Otherwise, in
 * a transaction, the candidates of filtered subscriptions come back, the pure matcher decides, and the matches are
 * inserted before the commit.
 *
 * One router at a time (a transaction-level advisory lock; a pass that does not get it routes nothing and says
 * `busy`): the tick is one row, and routing is serialised on it. A row's later version is captured by a transaction
 * that committed after the earlier version's, so it is in the same tick or a later one, and after it in id order:
 * a FIFO group's head is always the earlier version.
 */

/**
 * The CTEs both routing statements begin with: the lock, the tick, whether this pass may route (`mine`), the batch
 * (event ids and topics, from the tick), and the batch's topics that get segments (`seg`).
 */
const ROUTING_HEAD_SQL = `
WITH lock AS MATERIALIZED (
  -- The commit does not wait for its WAL flush: what routing creates has ids derived from the event (migration 010).
  SELECT pg_try_advisory_xact_lock(${ROUTE_LOCK}) AS held, set_config('synchronous_commit', 'off', true) AS async,
         (SELECT id FROM rowcast.installation) AS installation
), tick AS MATERIALIZED (
  SELECT * FROM rowcast.next_route_tick()
), mine AS MATERIALIZED (
  -- This statement's snapshot was taken before it got the lock: a router that committed in between moved the tick
  -- past what this snapshot shows. FOR UPDATE reads the latest version; if it is not the one this snapshot sees,
  -- the pass routes nothing (and is not fresh: the caller passes again, with a snapshot that sees it).
  SELECT (SELECT held FROM lock) AND coalesce((SELECT r.xmin = (SELECT xmin FROM rowcast.route_tick)
                                                 FROM rowcast.route_tick r WHERE (SELECT held FROM lock) FOR UPDATE), false) AS yes
), batch AS (
  SELECT b.id, b.topic FROM tick t, rowcast.tick_events(t.prev, t.cur, t.hi, t.pos, CASE WHEN (SELECT yes FROM mine) THEN $1 ELSE 0 END) b
), seg AS MATERIALIZED (
  -- Topics whose subscriptions all read through cursors (standard, no claim checks), or that have none, get a
  -- segment of the batch's events instead of a message row per event, while the installation says so (migration
  -- 042). A topic's readers without a subscription (live streams, replay, the dashboard) read the log either way.
  SELECT t.name, NOT EXISTS (SELECT 1 FROM rowcast.subscriptions s WHERE s.topic = t.name) AS unsubscribed
    FROM rowcast.topics t
   WHERE (SELECT i.log_segments FROM rowcast.installation i) AND t.name IN (SELECT topic FROM batch)
     AND NOT t.fifo AND t.large_messages <> 'claim-check'
     AND NOT EXISTS (SELECT 1 FROM rowcast.subscriptions s WHERE s.topic = t.name AND NOT s.cursor)
)`;

/** The tick moved past the batch and the segments of its events on `seg` topics, when `routes` (SQL) holds. */
const appendSegmentsSql = (routes: string) => `advance AS (
  -- The batch is routed by moving the tick past it: one row written per batch, none per event.
  UPDATE rowcast.route_tick r
     SET prev = t.prev, cur = t.cur, hi = t.hi, pos = coalesce((SELECT max(id) FROM batch), t.pos),
         done = (SELECT count(*) FROM batch) < $1
    FROM tick t
   WHERE (SELECT yes FROM mine) AND ${routes}
), sg AS (
  -- One row per topic: the seqs drawn for its events, in event order, and the events. Drawn topic by topic, so a
  -- segment's seqs are consecutive unless another writer drew one meanwhile: readers then slice it, not unnest it.
  INSERT INTO rowcast.log_segments (topic, first_seq, last_seq, seqs, event_ids, entries, events)
  SELECT x.topic, min(x.seq), max(x.seq), array_agg(x.seq ORDER BY x.seq), array_agg(x.id ORDER BY x.seq), count(*),
         int8range(min(x.id), max(x.id), '[]')
    FROM (SELECT o.topic, o.id, nextval('rowcast.messages_seq_seq'::regclass) AS seq
            FROM (SELECT b.topic, b.id FROM batch b WHERE ${routes} AND b.topic IN (SELECT name FROM seg) ORDER BY b.topic, b.id) o) x
   GROUP BY x.topic
  RETURNING topic, entries
), sg_unmatched AS (
  -- A segment on a topic without subscriptions is unmatched, as its message rows were (COUNT_UNMATCHED_SQL counts
  -- those; a topic is in one of the two sets, so each topic row is updated once).
  UPDATE rowcast.topics t SET unmatched_messages = t.unmatched_messages + g.entries
    FROM sg g JOIN seg ON seg.name = g.topic
   WHERE t.name = g.topic AND seg.unsubscribed
  RETURNING 1
)`;

/**
 * A batch whose events all go to `seg` topics needs none of the rest: no event is read (the tick gives the ids and
 * topics), no message, invocation or delivery row is written. A plan without those parts costs PostgreSQL less to
 * start and run, which on a trickle is most of routing's cost (one event per statement). It routes only such a
 * batch, checked in its own snapshot; any other batch it leaves alone and says `refused`, for the full statement.
 * Parameters: $1 batch size, $2–$5 the direct claim (only its cursors lease here), $6–$8 the lease's horizon.
 */
export const SEGMENTS_ONLY_SQL = `${ROUTING_HEAD_SQL}, segments_only AS MATERIALIZED (
  SELECT NOT EXISTS (SELECT 1 FROM batch b WHERE b.topic IS NULL OR b.topic NOT IN (SELECT name FROM seg)) AS yes
), ${appendSegmentsSql('(SELECT yes FROM segments_only)')},
${directLeaseSql({ subscriptions: '$2', counts: '$3', leaseMs: '$4', owner: '$5', horizon: ['$6', '$7', '$8'], appended: 'SELECT topic, entries AS seqs FROM sg' })}
SELECT NOT (SELECT yes FROM segments_only) AS refused, NOT (SELECT held FROM lock) AS busy, ${DIRECTLY_LEASED_SQL},
       (SELECT count(*) FROM batch WHERE (SELECT yes FROM segments_only))::int AS events, (SELECT fresh FROM tick) AND (SELECT yes FROM mine) AS fresh`;

const routeSql = (oneStatement: boolean) => `${ROUTING_HEAD_SQL}, filtered AS (
  SELECT ${oneStatement ? filteredRowsSubscriptionOn('SELECT topic FROM batch') : 'false'} AS yes
), ev AS (
  -- "= ANY (ARRAY(…))": the read stays on the primary key whatever the planner guesses the batch's size is.
  SELECT e.* FROM rowcast.events e WHERE e.id = ANY (ARRAY(SELECT id FROM batch)) AND NOT (SELECT yes FROM filtered)
), ${appendSegmentsSql('NOT (SELECT yes FROM filtered)')}, body AS (
  SELECT ev.id, ev.topic, ev.function, ev.capture, ev.op, ev.schema_name, ev.table_name, ev.key, ev.trace,
         rowcast.event_message_body(ev::rowcast.events) AS text, rowcast.event_message_attributes(ev::rowcast.events) AS attributes
    FROM ev WHERE ev.topic IS NULL OR ev.topic NOT IN (SELECT name FROM seg)
), m AS (
  INSERT INTO rowcast.messages (id, topic, subject, body, attributes, group_key, event_id, trace)
  SELECT rowcast.derived_uuid((SELECT installation FROM lock), 'message/' || b.id), b.topic, c.subject, b.text,
         b.attributes, b.key::text, b.id, b.trace
    FROM body b LEFT JOIN rowcast.captures c ON c.name = b.capture
   WHERE b.topic IS NOT NULL
   ORDER BY b.id
  RETURNING id, topic, subject, attributes, body, protocol_bodies, content_type, group_key, event_id, seq, trace, created_at
), inv AS (${
  oneStatement
    ? `
  -- Leased at once to the routing process's function worker for the slots it holds free (no claim round trip).
  INSERT INTO rowcast.invocations (id, function, payload, source, event_id, trace, state, attempts, available_at, lease_owner, lease, started_at)
  SELECT rowcast.derived_uuid((SELECT installation FROM lock), 'invocation/' || x.id), x.function, x.text, 'capture', x.id, x.trace, CASE WHEN x.direct THEN 'in_flight' ELSE 'pending' END, CASE WHEN x.direct THEN 1 ELSE 0 END,
         CASE WHEN x.direct THEN now() + x.lease_ms * interval '1 millisecond' ELSE now() END, CASE WHEN x.direct THEN $9::text END,
         CASE WHEN x.direct THEN gen_random_uuid() END, CASE WHEN x.direct THEN now() END
    FROM (SELECT b.function, b.text, b.id, b.trace, w.lease_ms, row_number() OVER (PARTITION BY b.function ORDER BY b.id) <= coalesce(w.n, 0) AS direct
            FROM body b LEFT JOIN unnest($6::text[], $7::int[], $8::int[]) AS w(function, n, lease_ms) ON w.function = b.function
           WHERE b.function IS NOT NULL) x
   ORDER BY x.id`
    : `
  INSERT INTO rowcast.invocations (id, function, payload, source, event_id, trace)
  SELECT rowcast.derived_uuid((SELECT installation FROM lock), 'invocation/' || b.id), b.function, b.text, 'capture', b.id, b.trace
    FROM body b WHERE b.function IS NOT NULL ORDER BY b.id`
}
  RETURNING id, function, state, attempts, lease, payload, client_context, trace
), d AS (${oneStatement ? directClaimDeliveriesSql({ subscriptions: '$2', counts: '$3', leaseMs: '$4', owner: '$5' }) : UNFILTERED_DELIVERIES_SQL}
), ${
  oneStatement
    ? `${directLeaseSql({ subscriptions: '$2', counts: '$3', leaseMs: '$4', owner: '$5', horizon: ['$10', '$11', '$12'], appended: 'SELECT topic, 1 AS seqs FROM m UNION ALL SELECT topic, entries FROM sg' })},
u AS (${COUNT_UNMATCHED_SQL})
SELECT (SELECT yes FROM filtered) AS filtered, NOT (SELECT held FROM lock) AS busy, (SELECT count(*) FROM d)::int AS unfiltered, (SELECT count(*) FROM u) AS unmatched_topics,
       ${DIRECTLY_CLAIMED_SQL} AS claimed, ${DIRECTLY_LEASED_SQL},
       (SELECT json_agg(json_build_object('id', i.id::text, 'function', i.function, 'attempts', i.attempts, 'lease', i.lease, 'payload', i.payload,
                                          'client_context', i.client_context, 'trace', i.trace)) FROM inv i WHERE i.state = 'in_flight') AS claimed_invocations,`
    : `c AS (${FILTER_CANDIDATES_SQL})
${FAN_OUT_RESULT_SQL}, NOT (SELECT held FROM lock) AS busy,`
} (SELECT count(*) FROM ev)::int AS events, (SELECT count(*) FROM inv)::int AS invocations, (SELECT fresh FROM tick) AND (SELECT yes FROM mine) AS fresh`;

export const ONE_STATEMENT_SQL = routeSql(true);
const TRANSACTION_SQL = routeSql(false);
const routeOneStatement = prepared('route', ONE_STATEMENT_SQL);
const routeInTransaction = prepared('route_filtered', TRANSACTION_SQL);
const routeSegmentsOnly = prepared('route_segments', SEGMENTS_ONLY_SQL);

/**
 * How long routing keeps to the next form after a statement did not route its batch: the full statement after the
 * segments-only one refused one, the transaction after the full one met a filtered subscription.
 */
const RECHECK_MS = 10_000;
const segmentsRefusedAt = new WeakMap<Pool, number>();
const filteredSeenAt = new WeakMap<Pool, number>();
const triedLately = (at: WeakMap<Pool, number>, pool: Pool) => Date.now() - (at.get(pool) ?? -Infinity) <= RECHECK_MS;

/** A one-statement form's row as a RouteResult; what a form does not write it does not return. */
function routedOf(row: {
  busy: boolean;
  events: number;
  unfiltered?: number;
  invocations?: number;
  claimed?: Record<string, unknown>[] | null;
  leased: SqlRow[] | null;
  cursors_covered: boolean;
  claimed_invocations?: (ClaimedInvocationRow & { function: string })[] | null;
}): RouteResult {
  return {
    events: row.events,
    busy: row.busy,
    deliveries: row.unfiltered ?? 0,
    invocations: row.invocations ?? 0,
    claimed: (row.claimed ?? []).map(toClaimedDelivery),
    leased: row.leased ?? [],
    cursorsCovered: row.cursors_covered,
    claimedInvocations: (row.claimed_invocations ?? []).map((i) => toClaimedInvocation(i.function, i)),
  };
}

type Direct = { deliveries?: DirectClaim; invocations?: DirectInvocationClaim };

export async function routeEvents(pool: Pool, batchSize: number, direct: Direct = {}): Promise<RouteResult> {
  const first = await routeBatch(pool, batchSize, direct);
  // A pass that found its tick used up ended it; what committed since is in the next tick, read by the next pass.
  // Without it, "nothing routed" would not mean "nothing left", and the router could sleep on events it never saw.
  if (first.routed.events || first.routed.busy || first.fresh) return first.routed;
  return (await routeBatch(pool, batchSize, direct)).routed;
}

async function routeBatch(
  pool: Pool,
  batchSize: number,
  direct: Direct,
): Promise<{ routed: RouteResult; fresh: boolean }> {
  if (!triedLately(segmentsRefusedAt, pool)) {
    const { rows } = await pool.query(
      routeSegmentsOnly([batchSize, ...directClaimValues(direct.deliveries), ...directLeaseValues(direct.deliveries)]),
    );
    const row = rows[0]!;
    if (!row.refused) return { routed: routedOf(row), fresh: row.fresh };
    segmentsRefusedAt.set(pool, Date.now());
  }
  if (!triedLately(filteredSeenAt, pool)) {
    const functions = [...(direct.invocations?.wanted ?? [])].filter(([, w]) => w.n > 0);
    const { rows } = await pool.query(
      routeOneStatement([
        batchSize,
        ...directClaimValues(direct.deliveries),
        functions.map(([name]) => name),
        functions.map(([, w]) => w.n),
        functions.map(([, w]) => w.leaseMs),
        direct.invocations?.owner ?? null,
        ...directLeaseValues(direct.deliveries),
      ]),
    );
    const row = rows[0]!;
    if (!row.filtered) return { routed: routedOf(row), fresh: row.fresh };
    filteredSeenAt.set(pool, Date.now());
  }
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<
      FanOutRow & { events: number; busy: boolean; invocations: number; fresh: boolean }
    >(routeInTransaction([batchSize]));
    const row = rows[0]!;
    const deliveries = row.events ? await finishFanOut(client, row) : 0;
    const routed = {
      events: row.events,
      busy: row.busy,
      deliveries,
      invocations: row.invocations,
      claimed: [],
      leased: [],
      cursorsCovered: false,
      claimedInvocations: [],
    };
    return { routed, fresh: row.fresh };
  });
}

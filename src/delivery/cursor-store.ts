import { randomUUID } from 'node:crypto';
import { type Pool, type PoolClient, withTransaction } from '../store/pool.js';
import { prepared, type SqlRow } from '../store/sql.js';
import { type ClaimedDelivery, toClaimedDelivery } from '../store/deliveries.js';
import {
  LEASE_COLUMNS,
  NO_EVENT_COLUMNS,
  type LeasedMessage,
  type LogHorizon,
  type LogRange,
  type HeldWindows,
  readLease,
} from '../store/log-leases.js';
import { CLAIM_SQL, type DeliveryResult, recordDeliveryResults } from './delivery-store.js';
import { DELIVERY_ORDER } from '../routing/fan-out.js';

/**
 * The store's side of subscriptions that read their topic through a cursor (migration 030): lease the next ranges
 * of the log, complete a range. Nothing is written per delivered message; a range's failures and the work handed
 * back unsent become delivery rows when the range completes, so retries, dead letters and redrive stay the rows'.
 */

const leaseStatement = prepared(
  'lease_log_ranges',
  `SELECT ${LEASE_COLUMNS}
     FROM rowcast.lease_log_ranges($1::text[], $2::int[], $3::int, $4::text, $5::bigint, $6::bigint, $7::text[], false,
                                   $8::text[], $9::bigint[], $10::bigint[]) l`,
);

/**
 * Due delivery rows of the wanted subscriptions (CLAIM_SQL), then, for those of them that read a log ($8), what
 * their rows left of their room, leased from their cursors: one round trip for both. The lease function is
 * VOLATILE, so its statements see what committed before each of them, as when it was a statement of its own.
 */
const claimStatement = prepared(
  'claim_rows_and_ranges',
  `WITH claimed_rows AS (${CLAIM_SQL}),
   rest AS (
     SELECT array_agg(w.subscription) AS subs, array_agg(w.n - coalesce(c.k, 0)) AS counts
       FROM unnest($1::text[], $2::int[]) AS w(subscription, n)
       LEFT JOIN (SELECT subscription, count(*)::int AS k FROM claimed_rows GROUP BY subscription) c USING (subscription)
      WHERE w.subscription = ANY ($8::text[]) AND w.n > coalesce(c.k, 0)
        -- As the rows' claim: a paused cursor leases nothing from the pause's commit on.
        AND EXISTS (SELECT 1 FROM rowcast.subscriptions s WHERE s.name = w.subscription AND s.state = 'active')
     HAVING count(*) > 0)
   SELECT 'row' AS kind, subscription, NULL AS from_seq, NULL AS to_seq, lease, attempt, NULL AS writers, delivery_id,
          message_id, topic, subject, body, content_type, attributes, attribute_types, created_at, trace,
          max_message_size, large_messages, claim_check_ttl_ms, NULL AS group_key, NULL AS held, ${NO_EVENT_COLUMNS}
     FROM claimed_rows
   UNION ALL
   SELECT ${LEASE_COLUMNS}
     FROM rest CROSS JOIN LATERAL
          rowcast.lease_log_ranges(rest.subs, rest.counts, $3::int, $4::text, $5::bigint, $6::bigint, $7::text[], false,
                                   $9::text[], $10::bigint[], $11::bigint[]) l`,
);

/**
 * Leases up to `n` messages per subscription past its cursor (or a range whose lease expired, whole), within the
 * settled horizon. Runs on a claim session (asynchronous commit: a lease lost in a crash is handed out again).
 * `held`: what the process holds of segment entries' messages (HeldEntries.windows), told to the lease.
 */
export async function leaseLogRanges(
  client: Pool | PoolClient,
  wanted: Map<string, number>,
  leaseMs: number,
  owner: string,
  horizon: LogHorizon,
  held: HeldWindows | null = null,
): Promise<{ horizon: LogHorizon; messages: LeasedMessage[] }> {
  const { rows } = await client.query(
    leaseStatement([...leaseValues(wanted, leaseMs, owner, horizon), ...knownValues(held)]),
  );
  const read = readLease(rows, held);
  return { horizon: read.horizon!, messages: read.messages };
}

/**
 * Claims the wanted subscriptions' due delivery rows and leases, for those of them in `logReaders`, the rest of
 * their room from their cursors, in one statement. `horizon` is null when no cursor was asked (all room went to rows).
 */
export async function claimRowsAndRanges(
  client: PoolClient,
  wanted: Map<string, number>,
  logReaders: string[],
  leaseMs: number,
  owner: string,
  horizon: LogHorizon,
  held: HeldWindows | null = null,
): Promise<{ rows: ClaimedDelivery[]; horizon: LogHorizon | null; messages: LeasedMessage[] }> {
  const { rows } = await client.query(
    claimStatement([...leaseValues(wanted, leaseMs, owner, horizon), logReaders, ...knownValues(held)]),
  );
  const lease = rows.filter((r: SqlRow) => r.kind !== 'row');
  return {
    rows: rows.filter((r: SqlRow) => r.kind === 'row').map(toClaimedDelivery),
    ...(lease.length ? readLease(lease, held) : { horizon: null, messages: [] }),
  };
}

const knownValues = (held: HeldWindows | null): unknown[] => [held?.topics ?? [], held?.lo ?? [], held?.hi ?? []];

function leaseValues(wanted: Map<string, number>, leaseMs: number, owner: string, horizon: LogHorizon): unknown[] {
  return [
    [...wanted.keys()],
    [...wanted.values()],
    Math.ceil(leaseMs),
    owner,
    horizon.settled,
    horizon.barrierSeq,
    horizon.barrierWriters,
  ];
}

/** A range all of whose messages were attempted (or handed back): what must outlive it as delivery rows. */
export interface RangeCompletion {
  range: LogRange;
  /** Attempts that did not succeed: recorded as a claimed delivery's result would be (retry, dead, disable). */
  failed: { messageId: string; result: Omit<DeliveryResult, 'deliveryId' | 'lease' | 'attempt'> }[];
  /**
   * Messages handed back unsent (shutdown, or their lease ran short while queued), and on FIFO topics those held
   * behind an earlier delivery of their group: pending rows, due now (the FIFO claim rule orders them).
   */
  handedBack: { messageId: string; started: boolean }[];
  /**
   * The range holds messages over their claim-check topic's size limit: links to their bodies were (or, by an owner
   * whose lease expired, may have been) sent, lasting `ttlMs`. Its completion records that for retention.
   */
  claimChecks?: { topic: string; ttlMs: number };
  /** A FIFO cursor's range: the cursor's next range can be leased once this one completes. */
  fifo?: boolean;
}

const completeStatement = prepared(
  'complete_log_ranges',
  `DELETE FROM rowcast.cursor_leases c USING unnest($1::text[], $2::bigint[], $3::uuid[]) AS r(subscription, from_seq, lease)
    WHERE c.subscription = r.subscription AND c.from_seq = r.from_seq AND c.lease = r.lease
   RETURNING c.subscription, c.from_seq::text`,
);

// What outlives a range's completion, besides the rows of its failures:
// - A range with claim-checked messages leaves a row for retention (migration 031): each link of it was signed before
//   this statement began, so it expires by now() + the TTL it was signed with. Written even when the lease was lost
//   (a PostgreSQL crash, or taken over): the links this owner sent are out there all the same.
// - A range taken over (attempt past the first) leaves its attempt number for the delivery detail (migration 040):
//   only if this completion holds, since a refused one's new owner sends, and records, the range again.
const completeWithRecordsStatement = prepared(
  'complete_log_ranges_with_records',
  `WITH r AS (
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bigint[], $5::text[], $6::bigint[], $7::int[])
                AS r(subscription, from_seq, lease, to_seq, topic, ttl_ms, attempt)),
   done AS (
     DELETE FROM rowcast.cursor_leases c USING r
      WHERE c.subscription = r.subscription AND c.from_seq = r.from_seq AND c.lease = r.lease
     RETURNING c.subscription, c.from_seq),
   links AS (
     INSERT INTO rowcast.cursor_claim_checks (topic, from_seq, to_seq, expires_at)
     SELECT r.topic, r.from_seq, r.to_seq, now() + r.ttl_ms * interval '1 millisecond' FROM r WHERE r.ttl_ms IS NOT NULL),
   retakes AS (
     INSERT INTO rowcast.cursor_retakes (subscription, from_seq, to_seq, attempts)
     SELECT r.subscription, r.from_seq, r.to_seq, r.attempt
       FROM r JOIN done d ON d.subscription = r.subscription AND d.from_seq = r.from_seq
      WHERE r.attempt > 1
     ON CONFLICT (subscription, from_seq) DO UPDATE SET to_seq = EXCLUDED.to_seq, attempts = EXCLUDED.attempts)
   SELECT subscription, from_seq::text FROM done`,
);

/** The completion of these ranges: the plain DELETE unless one of them leaves a record (claim checks, a retake). */
function completionOf(ranges: RangeCompletion[]) {
  const fenced = [
    ranges.map((c) => c.range.subscription),
    ranges.map((c) => c.range.fromSeq),
    ranges.map((c) => c.range.lease),
  ];
  if (!ranges.some((c) => c.claimChecks || c.range.attempt > 1)) return completeStatement(fenced);
  return completeWithRecordsStatement([
    ...fenced,
    ranges.map((c) => c.range.toSeq),
    ranges.map((c) => c.claimChecks?.topic ?? null),
    ranges.map((c) => c.claimChecks?.ttlMs ?? null),
    ranges.map((c) => c.range.attempt),
  ]);
}

/**
 * Completes ranges whose every message was delivered, in one statement. Ranges with failures or work handed back
 * complete one transaction each, with their rows. A range whose lease was lost (expired and taken over) writes
 * nothing but the record of its claim-check links: its new owner sends it again. Returns how many ranges completed,
 * and whether dead letters were published.
 */
export async function completeLogRanges(
  pool: Pool,
  completions: RangeCompletion[],
): Promise<{ completed: number; deadLetters: boolean }> {
  const clean = completions.filter((c) => !c.failed.length && !c.handedBack.length);
  let completed = 0;
  let deadLetters = false;
  if (clean.length) {
    const res = await pool.query(completionOf(clean));
    completed += res.rowCount ?? 0;
  }
  for (const c of completions.filter((x) => x.failed.length || x.handedBack.length)) {
    const done = await withTransaction(pool, (client) => completeWithRows(client, c));
    if (done) completed++;
    if (done && c.failed.some((f) => f.result.deadLetter)) deadLetters = true;
  }
  return { completed, deadLetters };
}

async function completeWithRows(client: PoolClient, c: RangeCompletion): Promise<boolean> {
  const { range } = c;
  const gone = await client.query(completionOf([c]));
  if (!gone.rowCount) return false;
  // A message read from a segment (migration 042) gets the row a delivery row refers to, built from its event.
  await client.query(
    `SELECT rowcast.materialize_segment_messages(s.topic, $2, $3, $4) FROM rowcast.subscriptions s WHERE s.name = $1`,
    [range.subscription, range.fromSeq, range.toSeq, [...c.failed, ...c.handedBack].map((x) => x.messageId)],
  );
  // Failed attempts become rows in flight under a fresh lease, then take their result like any claimed delivery.
  const leases = c.failed.map(() => randomUUID());
  const { rows } = await client.query<{ id: string; message_id: string }>(
    `INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, attempts, available_at, lease_owner, lease, created_at)
     SELECT f.message_id, $1, ${DELIVERY_ORDER}, 'in_flight', $2, now(), 'cursor', f.lease, m.created_at
       FROM unnest($3::uuid[], $4::uuid[]) AS f(message_id, lease) JOIN rowcast.messages m ON m.id = f.message_id
       LEFT JOIN rowcast.topics t ON t.name = m.topic
      -- As below: a message routed as the subscription switched to its cursor has a row, which retries it.
      WHERE NOT EXISTS (SELECT 1 FROM rowcast.deliveries e WHERE e.message_id = f.message_id AND e.subscription = $1)
     RETURNING id::text, message_id::text`,
    [range.subscription, range.attempt, c.failed.map((f) => f.messageId), leases],
  );
  const idOf = new Map(rows.map((r) => [r.message_id, r.id]));
  await recordDeliveryResults(
    client,
    c.failed.flatMap((f, i) => {
      const deliveryId = idOf.get(f.messageId);
      return deliveryId ? [{ ...f.result, deliveryId, lease: leases[i]!, attempt: range.attempt }] : [];
    }),
  );
  if (c.handedBack.length)
    await client.query(
      `INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq, state, attempts, available_at, created_at)
       SELECT h.message_id, $1, ${DELIVERY_ORDER}, 'pending', CASE WHEN h.started THEN $2 ELSE $2 - 1 END, now(), m.created_at
         FROM unnest($3::uuid[], $4::boolean[]) AS h(message_id, started) JOIN rowcast.messages m ON m.id = h.message_id
         LEFT JOIN rowcast.topics t ON t.name = m.topic
        -- A message routed as the subscription switched to its cursor has a row (both, never neither): it is the rows'.
        WHERE NOT EXISTS (SELECT 1 FROM rowcast.deliveries e WHERE e.message_id = h.message_id AND e.subscription = $1)`,
      [range.subscription, range.attempt, c.handedBack.map((h) => h.messageId), c.handedBack.map((h) => h.started)],
    );
  return true;
}

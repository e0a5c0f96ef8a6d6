import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { historyEventSql } from '../../model/attempt-log.js';
import { type FilterPolicyScope, matchesFilterPolicy } from '../../model/filter-policy/filter-policy.js';
import { type Pool, withTransaction } from '../../store/pool.js';
import { notDeclared } from '../inspect/declarations.js';
import { unconfirmed } from './subscription-actions.js';
import { wakeProcesses } from './wake-processes.js';

export interface ReplayOptions {
  subscription: string;
  /** Events captured at or after this time… */
  since: Date;
  /** …and before this one (default: now). */
  until?: Date;
  onProgress?: (replayed: number) => void;
}

const REPLAY_CHUNK = 1000;

/**
 * Sends a capture's events captured in [since, until) again to one subscription of its topic, as the same messages
 * (same ids, so receivers can tell a replay from news): finished and dead deliveries go back to pending with a fresh
 * attempt budget; messages the subscription never had (it was created later) get a delivery if its filter policy
 * matches; pending ones are left alone. Only what retention kept can be replayed. Returns how many were queued.
 */
export async function replayCapture(pool: Pool, capture: string, options: ReplayOptions): Promise<number> {
  const c = (
    await pool.query<{ topic: string | null; function: string | null }>(
      'SELECT topic, function FROM rowcast.captures WHERE name = $1',
      [capture],
    )
  ).rows[0];
  if (!c) throw await notDeclared(pool, 'capture', capture);
  if (c.topic === null)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Capture ${capture} invokes function ${c.function}, it publishes to no topic: there is nothing to replay to a subscription.`,
    );
  const s = (
    await pool.query<{
      topic: string;
      filter_policy: object | null;
      filter_scope: FilterPolicyScope;
      sns_state: string;
    }>('SELECT topic, filter_policy, filter_scope, sns_state FROM rowcast.subscriptions WHERE name = $1', [
      options.subscription,
    ])
  ).rows[0];
  if (!s) throw await notDeclared(pool, 'subscription', options.subscription);
  if (s.sns_state !== 'confirmed') throw unconfirmed(options.subscription, s.sns_state);
  if (s.topic !== c.topic)
    throw new RowcastError(
      ErrorCodes.CONFLICT,
      `Subscription ${options.subscription} is on topic ${s.topic}, but capture ${capture} publishes to ${c.topic}: pick a subscription of topic ${c.topic}.`,
    );
  if (options.until && options.until <= options.since)
    throw new RowcastError(ErrorCodes.INVALID_ARGUMENT, 'until must be later than since.');

  // Messages are found by topic and publish order (index on (topic, seq)), starting at the first one created since
  // `since` (BRIN on created_at; a message is created when its event is routed, after it was captured), whether a
  // message row or a segment's entry (migration 042).
  const start = await pool.query<{ seq: string | null }>(
    `SELECT (least((SELECT min(seq) FROM rowcast.messages WHERE topic = $1 AND created_at >= $2),
                   (SELECT min(first_seq) FROM rowcast.log_segments WHERE topic = $1 AND created_at >= $2)) - 1)::text AS seq`,
    [c.topic, options.since],
  );
  let cursor = start.rows[0]?.seq ?? null;
  let total = 0;
  while (cursor !== null) {
    const chunk = await withTransaction(pool, async (client) => {
      // The chunk: the topic's next REPLAY_CHUNK messages after the cursor, of which this capture's are replayed.
      const bounds = await client.query<{ bound: string | null; n: number }>(
        `SELECT max(s)::text AS bound, count(*)::int AS n FROM rowcast.log_seqs($1, $2::bigint, 9223372036854775807, $3) s`,
        [c.topic, cursor, REPLAY_CHUNK],
      );
      const { bound, n } = bounds.rows[0]!;
      if (bound === null) return { queued: 0, last: null, full: false };
      const { rows } = await client.query<{
        id: string;
        seq: string;
        attributes: Record<string, string>;
        body: string;
        content_type: string;
        delivery: string | null;
        state: string | null;
        group_key: string | null;
        place: string;
      }>(
        `SELECT m.id::text, m.seq::text, m.attributes, m.body, m.content_type, d.id::text AS delivery, d.state,
                CASE WHEN t.fifo THEN coalesce(m.group_key, '') END AS group_key, coalesce(m.event_id, m.seq)::text AS place
           FROM rowcast.log_messages($1, $3::bigint, $7::bigint) m JOIN rowcast.topics t ON t.name = m.topic
           JOIN rowcast.events e ON e.id = m.event_id
           LEFT JOIN rowcast.deliveries d ON d.message_id = m.id AND d.subscription = $2
          WHERE e.capture = $4 AND e.captured_at >= $5 AND ($6::timestamptz IS NULL OR e.captured_at < $6)
          ORDER BY m.seq`,
        [c.topic, options.subscription, cursor, capture, options.since, options.until ?? null, bound],
      );
      // Deliveries already pending or in flight are on their way; finished and dead ones are sent again.
      const reset = rows.filter((r) => r.state === 'done' || r.state === 'dead').map((r) => r.delivery!);
      const fresh = rows.filter(
        (r) =>
          r.delivery === null &&
          (!s.filter_policy ||
            matchesFilterPolicy(
              s.filter_policy,
              { attributes: r.attributes, body: s.filter_scope === 'MessageBody' ? parseJson(r) : undefined },
              s.filter_scope,
            )),
      );
      if (reset.length) {
        await client.query(
          `UPDATE rowcast.deliveries d SET state = 'pending', attempts = 0, available_at = now(), delivered_at = NULL, updated_at = now(), attempt_log = ${historyEventSql('d', 'replayed')}
            WHERE id = ANY($1::bigint[]) AND state IN ('done', 'dead')`,
          [reset],
        );
      }
      if (fresh.length) {
        // A segment's entry gets the message row its delivery row refers to.
        await client.query(`SELECT rowcast.materialize_segment_messages($1, $2::bigint, $3::bigint, $4::uuid[])`, [
          c.topic,
          cursor,
          bound,
          fresh.map((r) => r.id),
        ]);
        await client.query(
          `INSERT INTO rowcast.deliveries (message_id, subscription, group_key, seq) SELECT m, $2, g, o FROM unnest($1::uuid[], $3::text[], $4::bigint[]) AS x(m, g, o)`,
          [fresh.map((r) => r.id), options.subscription, fresh.map((r) => r.group_key), fresh.map((r) => r.place)],
        );
      }
      return { queued: reset.length + fresh.length, last: bound, full: n === REPLAY_CHUNK };
    });
    total += chunk.queued;
    options.onProgress?.(total);
    cursor = chunk.full ? chunk.last : null;
  }
  if (total) await wakeProcesses(pool);
  return total;
}

function parseJson(r: { body: string; content_type: string }): unknown {
  if (r.content_type !== 'application/json') return undefined;
  try {
    return JSON.parse(r.body);
  } catch {
    return undefined;
  }
}

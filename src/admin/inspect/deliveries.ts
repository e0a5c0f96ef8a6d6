import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { AttemptLogEntry } from '../../model/attempt-log.js';
import type { Pool } from '../../store/pool.js';
import type { SqlRow } from '../../store/sql.js';
import { decodeCursor, limitOf, type Page, type PageRequest, pageOf, type TimeRange } from './page.js';

export type { AttemptLogEntry };

/* Deliveries (one message to one subscription): lists by subscription, topic, state and time, and one in detail. */

export const DELIVERY_STATES = ['pending', 'in_flight', 'done', 'dead'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface DeliveryItem {
  id: string;
  messageId: string;
  subscription: string;
  topic: string;
  state: DeliveryState;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

export interface DeliveryDetail extends DeliveryItem {
  message: {
    id: string;
    topic: string;
    subject: string | null;
    body: string;
    contentType: string;
    attributes: Record<string, string>;
    eventId: string | null;
    trace: string | null;
    createdAt: Date;
  };
  /** Attempts and the history events between them (redriven, resent, replayed), oldest first. */
  attemptLog: AttemptLogEntry[];
}

export const DELIVERY_COLUMNS = `d.id::text, d.message_id::text, d.subscription, s.topic, d.state, d.attempts, d.last_status, d.last_error, d.created_at, d.updated_at, d.delivered_at`;

export function deliveryItem(r: SqlRow): DeliveryItem {
  return {
    id: r.id,
    messageId: r.message_id,
    subscription: r.subscription,
    topic: r.topic,
    state: r.state,
    attempts: r.attempts,
    lastStatus: r.last_status,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deliveredAt: r.delivered_at,
  };
}

/**
 * Deliveries (one message to one subscription), newest first. `since`/`until` bound when the delivery was created —
 * for dead ones (`status: 'dead'`), when it went dead, as redrive counts it.
 */
export async function listDeliveries(
  pool: Pool,
  filter: { subscription?: string; topic?: string; status?: DeliveryState } & TimeRange & PageRequest = {},
): Promise<Page<DeliveryItem>> {
  const limit = limitOf(filter);
  const after = decodeCursor('delivery', filter.cursor);
  const { rows } = await pool.query(
    `SELECT ${DELIVERY_COLUMNS}
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription
      WHERE ($1::text IS NULL OR d.subscription = $1) AND ($2::text IS NULL OR s.topic = $2) AND ($3::text IS NULL OR d.state = $3)
        AND ($4::timestamptz IS NULL OR (CASE WHEN $3 = 'dead' THEN d.updated_at ELSE d.created_at END) >= $4)
        AND ($5::timestamptz IS NULL OR (CASE WHEN $3 = 'dead' THEN d.updated_at ELSE d.created_at END) < $5)
        AND ($6::bigint IS NULL OR d.id < $6)
      ORDER BY d.id DESC LIMIT $7`,
    [
      filter.subscription ?? null,
      filter.topic ?? null,
      filter.status ?? null,
      filter.since ?? null,
      filter.until ?? null,
      after,
      limit + 1,
    ],
  );
  return pageOf(rows, limit, deliveryItem, (r) => r.id, 'delivery');
}

/** One delivery with its message and attempt history (the last 20 attempts). */
export async function getDelivery(pool: Pool, id: string): Promise<DeliveryDetail> {
  if (!/^\d{1,19}$/.test(id))
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `"${id}" is not a delivery id: delivery ids are whole numbers (the id field of /api/deliveries items).`,
    );
  const { rows } = await pool.query(
    `SELECT ${DELIVERY_COLUMNS}, d.attempt_log, m.topic AS message_topic, m.subject, m.body, m.content_type, m.attributes, m.event_id::text, m.trace, m.created_at AS message_created_at
       FROM rowcast.deliveries d JOIN rowcast.subscriptions s ON s.name = d.subscription JOIN rowcast.messages m ON m.id = d.message_id
      WHERE d.id = $1`,
    [id],
  );
  const r = rows[0];
  if (!r)
    throw new RowcastError(
      ErrorCodes.NOT_FOUND,
      `No delivery ${id}: it never existed or retention removed it (finished deliveries are kept for runtime.retention).`,
    );
  const log: AttemptLogEntry[] = r.attempt_log ?? [];
  // A delivery that succeeded at its first attempt has no log row (the hot path writes none): its one attempt is known anyway.
  if (r.state === 'done' && !log.some((e) => e.outcome === 'delivered')) {
    log.push({
      attempt: r.attempts,
      at: new Date(r.delivered_at ?? r.updated_at).toISOString(),
      outcome: 'delivered',
      status: r.last_status,
      error: null,
      durationMs: null,
    });
  }
  return {
    ...deliveryItem(r),
    message: {
      id: r.message_id,
      topic: r.message_topic,
      subject: r.subject,
      body: r.body,
      contentType: r.content_type,
      attributes: r.attributes,
      eventId: r.event_id,
      trace: r.trace,
      createdAt: r.message_created_at,
    },
    attemptLog: log,
  };
}

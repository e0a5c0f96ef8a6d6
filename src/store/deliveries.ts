import type { OutboundMessage } from '../model/sink.js';
import type { SqlRow } from './sql.js';

/** A leased delivery as the stages that claim deliveries see it: the delivery worker, the router and the function worker (direct leases). */
export interface ClaimedDelivery {
  deliveryId: string;
  subscription: string;
  attempt: number;
  /** The lease's fencing token: its result and release are recorded only while the row still has it. */
  lease: string;
  message: OutboundMessage;
  /** The topic's large-message rules. */
  limits: { maxMessageSize: number; largeMessages: 'reject' | 'claim-check'; claimCheckTtl: number };
}

/** A claimed delivery as the claim statement (or a direct claim, as json) returns it. */
export function toClaimedDelivery(r: SqlRow): ClaimedDelivery {
  return {
    deliveryId: r.delivery_id,
    subscription: r.subscription,
    attempt: r.attempt,
    lease: r.lease,
    message: {
      id: r.message_id,
      topic: r.topic,
      subject: r.subject,
      body: r.body,
      contentType: r.content_type,
      attributes: r.attributes,
      attributeTypes: r.attribute_types ?? null,
      timestamp: r.created_at,
      trace: r.trace,
    },
    limits: {
      maxMessageSize: r.max_message_size,
      largeMessages: r.large_messages,
      claimCheckTtl: Number(r.claim_check_ttl_ms),
    },
  };
}

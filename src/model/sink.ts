import type { FilterPolicyScope } from './filter-policy/filter-policy.js';
import type { DeliveryPolicy, MessageFormat } from '../config/subscription-schema.js';
import type { AttemptExchange } from './attempt-log.js';

/** A message as it leaves rowcast: the same id on every attempt, so receivers can deduplicate. */
export interface OutboundMessage {
  id: string;
  topic: string;
  subject: string | null;
  body: string;
  contentType: string;
  attributes: Record<string, string>;
  /** SNS data types of attributes published through the SNS API (Number, Binary, String.Array, …); others are String. */
  attributeTypes?: Record<string, string> | null;
  /** When the message was published (ISO 8601). */
  timestamp: string;
  trace: string | null;
}

export interface SubscriptionSettings {
  format: MessageFormat;
  headers: Record<string, string>;
  deliveryPolicy: DeliveryPolicy;
  maxConcurrency: number;
  /** format 'sns' (http/https): the bare body instead of SNS's envelope. */
  rawMessageDelivery?: boolean;
  /** format 'sns' (http/https): whether the endpoint confirms the subscription first (src/delivery/sns-envelope/confirmation.ts). */
  confirmation?: 'none' | 'required';
  /** Protocol-specific settings, validated by the protocol's own schema (sinks/<protocol>/). */
  options?: unknown;
}

export interface Subscription {
  name: string;
  topic: string;
  protocol: string;
  endpoint: string;
  settings: SubscriptionSettings;
  secret: string | null;
  /** After a secret rotation: the previous secret, still signed with until it expires (webhooks only). */
  previousSecret?: { secret: string; expiresAt: Date } | null;
  state: 'active' | 'paused' | 'disabled';
  /** A topic that receives this subscription's dead deliveries. */
  deadLetterTopic: string | null;
  /** Its topic's SignatureVersion for SNS envelopes (format 'sns'). */
  signatureVersion?: 1 | 2;
  /** Extra headers (lower case) whose configured value comes from the environment ("${NAME}"): redacted in the attempt log. */
  secretHeaders?: ReadonlySet<string>;
  /** It reads its topic through a cursor (`cursor: true`, or switched back and still draining): migration 030. */
  readsLog?: boolean;
  /** Its filter policy, applied at delivery to what it reads through a cursor (rows are filtered at fan-out). */
  filter?: { policy: object; scope: FilterPolicyScope } | null;
}

export interface DeliveryAttempt {
  deliveryId: string;
  /** 1 for the first attempt. */
  attempt: number;
  subscription: Subscription;
  message: OutboundMessage;
  /**
   * Whether a successful attempt's exchange is wanted (default true): a delivery row keeps it in its attempt log; a
   * message delivered through a cursor stores nothing when it succeeds, so the HTTP sink need not build it.
   */
  logSuccess?: boolean;
}

/**
 * done: acknowledged; retry: try again later; disable: the endpoint asked to stop (HTTP 410); dead: can never succeed.
 * exchange: what the attempt sent and got back, for the delivery's attempt log (HTTP sinks).
 */
export type SendOutcome = (
  | { kind: 'done'; status?: number }
  | { kind: 'retry'; error: string; status?: number; retryAfterMs?: number }
  | { kind: 'disable'; error: string; status?: number }
  | { kind: 'dead'; error: string; status?: number }
) & { exchange?: AttemptExchange };

/** One implementation per protocol (sinks/<protocol>/). A sink never throws: every failure is an outcome. */
export interface Sink {
  send(attempt: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome>;
  close(): Promise<void>;
}

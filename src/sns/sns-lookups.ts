import type { AwsConfig } from '../config/aws-schema.js';
import type { FilterPolicyScope } from '../model/filter-policy/filter-policy.js';
import { redactEndpoint } from '../observability/redact.js';
import type { Pool, PoolClient } from '../store/pool.js';
import { parseArn, topicOfArn } from '../model/arn.js';
import { invalidParameter, notFound, type QueryParams, SnsError } from './query-protocol.js';

/** What every SNS operation works with (SnsOperations' options). */
export interface SnsContext {
  pool: Pool;
  aws: AwsConfig;
  /** Entries per page of the List operations (SNS: 100 topics, 100 subscriptions). */
  pageSize: number;
}

/** One SNS action: the request's parameters in, the inner XML of its <OpResult> out (null for none). */
export type Operation = (p: QueryParams) => Promise<string | null>;

export interface TopicRow {
  name: string;
  fifo: boolean;
  owner: 'config' | 'api';
  max_message_size: number;
  large_messages: string;
  sns_attributes: Record<string, string>;
}

export interface SubscriptionRow {
  name: string;
  topic: string;
  protocol: string;
  endpoint: string;
  owner: 'config' | 'api';
  settings: { format?: string; rawMessageDelivery?: boolean; deliveryPolicy?: Record<string, unknown> };
  sns_state: 'pending_confirmation' | 'confirmed' | 'unsubscribed';
  filter_policy: object | null;
  filter_scope: FilterPolicyScope;
  dead_letter_topic: string | null;
  sns_attributes: Record<string, string>;
}

export const encodeToken = (last: string) => Buffer.from(last, 'utf8').toString('base64url');
export function decodeToken(token: string | undefined): string {
  if (token === undefined || token === '') return '';
  const value = Buffer.from(token, 'base64url').toString('utf8');
  if (!value || encodeToken(value) !== token)
    throw invalidParameter('Invalid parameter: NextToken (pass the NextToken of the previous answer unchanged)');
  return value;
}

/** The topic an ARN parameter names (its last part); InvalidParameter if it is not a topic ARN. */
export function topicParam(p: QueryParams, param: string): string {
  const arn = p.required(param);
  const name = topicOfArn(arn);
  if (!name)
    throw invalidParameter(
      `Invalid parameter: ${param}: ${JSON.stringify(arn)} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>).`,
    );
  return name;
}

export async function findTopic(db: Pool | PoolClient, name: string, required: boolean): Promise<TopicRow | null> {
  const { rows } = await db.query<TopicRow>(
    'SELECT name, fifo, owner, max_message_size, large_messages, sns_attributes FROM rowcast.topics WHERE name = $1',
    [name],
  );
  if (!rows[0] && required) throw notFound('Topic does not exist');
  return rows[0] ?? null;
}

export async function findSubscription(pool: Pool, arn: string): Promise<SubscriptionRow> {
  const parsed = parseArn(arn);
  const at = parsed?.service === 'sns' ? parsed.resource.lastIndexOf(':') : -1;
  if (!parsed || at < 1)
    throw invalidParameter(
      `Invalid parameter: SubscriptionArn: ${JSON.stringify(arn)} is not a subscription ARN (arn:aws:sns:<region>:<account>:<topic>:<id>).`,
    );
  const { rows } = await pool.query<SubscriptionRow>(
    `SELECT name, topic, protocol, endpoint, owner, settings, filter_policy, filter_scope, dead_letter_topic, sns_attributes, sns_state
       FROM rowcast.subscriptions WHERE topic = $1 AND name = $2`,
    [parsed.resource.slice(0, at), parsed.resource.slice(at + 1)],
  );
  if (!rows[0]) throw notFound('Subscription does not exist');
  return rows[0];
}

/** Config-declared topics and subscriptions change through the config, or the next apply would undo the change. */
export function assertApiMade(owner: 'config' | 'api', what: string): void {
  if (owner !== 'api')
    throw new SnsError(
      'AuthorizationError',
      `${what} is declared in rowcast's config: change or remove it there and run rowcast apply.`,
      403,
    );
}

export function protocolOf(s: Pick<SubscriptionRow, 'protocol' | 'sns_attributes'>): string {
  return s.sns_attributes.Protocol ?? (s.protocol === 'function' ? 'lambda' : s.protocol);
}

/** What the subscriber asked for (API-made), or where a config subscription delivers (credentials masked). */
export function shownEndpoint(
  aws: AwsConfig,
  s: Pick<SubscriptionRow, 'protocol' | 'endpoint' | 'sns_attributes'>,
): string {
  if (s.sns_attributes.Endpoint !== undefined) return redactEndpoint(s.sns_attributes.Endpoint);
  if (s.protocol === 'function') return `arn:aws:lambda:${aws.region}:${aws.accountId}:function:${s.endpoint}`;
  return redactEndpoint(s.endpoint.replace(/^mailto:/, ''));
}

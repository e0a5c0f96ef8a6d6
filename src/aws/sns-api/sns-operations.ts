import { randomUUID } from 'node:crypto';
import { endpointOf, subscriptionSettings } from '../../capture/apply.js';
import { type AwsConfig, subscriptionSchema, TOPIC_NAME } from '../../config/schema.js';
import type { FilterPolicyScope } from '../../subscriptions/filter-policy/filter-policy.js';
import { generateSecret } from '../../subscriptions/sinks/http/webhook-secret.js';
import { DELIVERIES_PAYLOAD, WAKE_CHANNEL } from '../../dispatcher/listener.js';
import { redactEndpoint } from '../../observability/logger.js';
import { type Pool, type PoolClient, withTransaction } from '../../store/pool.js';
import { publishMessages } from '../../topics/fan-out.js';
import { parseArn, snsSubscriptionArn, snsTopicArn, topicOfArn } from '../arn.js';
import { invalidParameter, notFound, type QueryParams, SnsError, toXml, xmlEntries } from './query-protocol.js';
import { checkTopicAttributes, type SubscriptionEffect, subscriptionAttribute } from './sns-attributes.js';
import { batchEntries, batchMessages, newMessage, publishTarget } from './sns-publish-message.js';

/**
 * The SNS operations over rowcast's own tables: topics and subscriptions made here are rows of rowcast.topics and
 * rowcast.subscriptions with owner 'api' (`rowcast apply` leaves them alone); a Publish inserts the message and its
 * deliveries in one transaction, committed before the answer, through the fan-out that function publishes use.
 * Each operation returns the inner XML of its <OpResult> (null for none).
 */

export interface SnsOperationsOptions {
  pool: Pool;
  aws: AwsConfig;
  /** Entries per page of the List operations (SNS: 100 topics, 100 subscriptions). */
  pageSize: number;
}

type Operation = (p: QueryParams) => Promise<string | null>;

/** Protocols Subscribe accepts: SNS's http, https, email, email-json and lambda, and rowcast's function. */
export const SUBSCRIBE_PROTOCOLS = ['http', 'https', 'email', 'email-json', 'lambda', 'function'] as const;

interface TopicRow {
  name: string;
  fifo: boolean;
  owner: 'config' | 'api';
  max_message_size: number;
  large_messages: string;
  sns_attributes: Record<string, string>;
}

interface SubscriptionRow {
  name: string;
  topic: string;
  protocol: string;
  endpoint: string;
  owner: 'config' | 'api';
  settings: { format?: string; deliveryPolicy?: Record<string, unknown> };
  filter_policy: object | null;
  filter_scope: FilterPolicyScope;
  dead_letter_topic: string | null;
  sns_attributes: Record<string, string>;
}

const encodeToken = (last: string) => Buffer.from(last, 'utf8').toString('base64url');
function decodeToken(token: string | undefined): string {
  if (token === undefined || token === '') return '';
  const value = Buffer.from(token, 'base64url').toString('utf8');
  if (!value || encodeToken(value) !== token) throw invalidParameter('Invalid parameter: NextToken (pass the NextToken of the previous answer unchanged)');
  return value;
}

export class SnsOperations {
  private readonly pool: Pool;
  private readonly aws: AwsConfig;
  private readonly pageSize: number;
  readonly operations: Record<string, Operation>;

  constructor(options: SnsOperationsOptions) {
    this.pool = options.pool;
    this.aws = options.aws;
    this.pageSize = options.pageSize;
    this.operations = {
      CreateTopic: (p) => this.createTopic(p),
      DeleteTopic: (p) => this.deleteTopic(p),
      ListTopics: (p) => this.listTopics(p),
      GetTopicAttributes: (p) => this.getTopicAttributes(p),
      SetTopicAttributes: (p) => this.setTopicAttributes(p),
      Subscribe: (p) => this.subscribe(p),
      ConfirmSubscription: (p) => this.confirmSubscription(p),
      Unsubscribe: (p) => this.unsubscribe(p),
      ListSubscriptions: (p) => this.listSubscriptions(p, null),
      ListSubscriptionsByTopic: (p) => this.listSubscriptions(p, this.topicParam(p, 'TopicArn')),
      GetSubscriptionAttributes: (p) => this.getSubscriptionAttributes(p),
      SetSubscriptionAttributes: (p) => this.setSubscriptionAttributes(p),
      Publish: (p) => this.publish(p),
      PublishBatch: (p) => this.publishBatch(p),
    };
  }

  // ───────────────────────────── topics ─────────────────────────────

  private async createTopic(p: QueryParams): Promise<string> {
    const name = p.required('Name');
    const attributes = p.entries('Attributes');
    const fifo = attributes.FifoTopic === 'true';
    if (!TOPIC_NAME.test(name) || name.endsWith('.fifo') !== fifo) {
      throw invalidParameter(
        fifo
          ? 'Invalid parameter: Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.'
          : 'Invalid parameter: Topic Name: 1–256 letters, digits, "-" or "_" (a name ending in .fifo needs the attribute FifoTopic=true).',
      );
    }
    checkTopicAttributes(attributes, fifo);
    const { rows } = await this.pool.query<TopicRow>(
      `WITH made AS (
         INSERT INTO rowcast.topics (name, fifo, owner, sns_attributes) VALUES ($1, $2, 'api', $3)
         ON CONFLICT (name) DO NOTHING RETURNING name, fifo, owner, sns_attributes, pg_notify('rowcast_config', ''))
       SELECT name, fifo, owner, sns_attributes FROM made UNION ALL SELECT name, fifo, owner, sns_attributes FROM rowcast.topics WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM made)`,
      [name, fifo, attributes],
    );
    const topic = rows[0]!;
    // CreateTopic is idempotent, but not with other attributes (as SNS).
    const differs = topic.fifo !== fifo || Object.entries(attributes).some(([k, v]) => k !== 'FifoTopic' && (topic.sns_attributes[k] ?? '') !== v);
    if (differs) throw invalidParameter(`Invalid parameter: Attributes Reason: Topic already exists with different attributes (topic ${name}).`);
    return toXml({ TopicArn: snsTopicArn(this.aws, name) });
  }

  private async deleteTopic(p: QueryParams): Promise<null> {
    const name = this.topicParam(p, 'TopicArn');
    const topic = await this.findTopic(this.pool, name, false);
    // Deleting a topic that does not exist succeeds, as in SNS.
    if (!topic) return null;
    this.assertApiMade(topic.owner, `topic ${name}`);
    await this.pool.query(`WITH gone AS (DELETE FROM rowcast.topics WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`, [name]);
    return null;
  }

  private async listTopics(p: QueryParams): Promise<string> {
    const after = decodeToken(p.get('NextToken'));
    const { rows } = await this.pool.query<{ name: string }>('SELECT name FROM rowcast.topics WHERE name > $1 ORDER BY name LIMIT $2', [after, this.pageSize + 1]);
    const page = rows.slice(0, this.pageSize);
    return toXml({
      Topics: page.map((r) => ({ TopicArn: snsTopicArn(this.aws, r.name) })),
      NextToken: rows.length > this.pageSize ? encodeToken(page.at(-1)!.name) : undefined,
    });
  }

  private async getTopicAttributes(p: QueryParams): Promise<string> {
    const name = this.topicParam(p, 'TopicArn');
    const topic = (await this.findTopic(this.pool, name, true))!;
    const { rows } = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rowcast.subscriptions WHERE topic = $1', [name]);
    const arn = snsTopicArn(this.aws, name);
    const attributes: Record<string, string> = {
      TopicArn: arn,
      Owner: this.aws.accountId,
      DisplayName: '',
      SignatureVersion: '1',
      Policy: defaultPolicy(arn, this.aws.accountId),
      ...topic.sns_attributes,
      SubscriptionsConfirmed: String(rows[0]!.n),
      SubscriptionsPending: '0',
      SubscriptionsDeleted: '0',
      ...(topic.fifo ? { FifoTopic: 'true', ContentBasedDeduplication: topic.sns_attributes.ContentBasedDeduplication ?? 'false' } : {}),
    };
    return `<Attributes>${xmlEntries(attributes)}</Attributes>`;
  }

  private async setTopicAttributes(p: QueryParams): Promise<null> {
    const name = this.topicParam(p, 'TopicArn');
    const attribute = p.required('AttributeName');
    const value = p.get('AttributeValue') ?? '';
    const topic = (await this.findTopic(this.pool, name, true))!;
    if (attribute === 'FifoTopic') throw invalidParameter('Invalid parameter: AttributeName: FifoTopic cannot be changed after the topic is created.');
    checkTopicAttributes({ [attribute]: value }, topic.fifo);
    // Topic attributes the config does not declare (DisplayName, Policy, …) may change on config topics too.
    await this.pool.query(`UPDATE rowcast.topics SET sns_attributes = sns_attributes || jsonb_build_object($2::text, $3::text), updated_at = now() WHERE name = $1`, [name, attribute, value]);
    return null;
  }

  // ───────────────────────────── subscriptions ─────────────────────────────

  private async subscribe(p: QueryParams): Promise<string> {
    const topic = this.topicParam(p, 'TopicArn');
    const protocol = p.required('Protocol').toLowerCase();
    const endpoint = p.get('Endpoint') ?? '';
    if (!(SUBSCRIBE_PROTOCOLS as readonly string[]).includes(protocol)) {
      throw invalidParameter(`Invalid parameter: Amazon SNS protocol ${protocol} is not supported by rowcast; use one of ${SUBSCRIBE_PROTOCOLS.join(', ')}.`);
    }
    if (!endpoint) throw invalidParameter(`Invalid parameter: Endpoint is required for protocol ${protocol}.`);
    await this.findTopic(this.pool, topic, true);
    const attributes = p.entries('Attributes');
    const effect = await this.subscriptionEffect(attributes, 'MessageAttributes');

    // The same endpoint on the same topic is the same subscription (SNS answers with its ARN again).
    const { rows: same } = await this.pool.query<{ name: string }>(
      `SELECT name FROM rowcast.subscriptions WHERE topic = $1 AND owner = 'api' AND sns_attributes ->> 'Protocol' = $2 AND sns_attributes ->> 'Endpoint' = $3`,
      [topic, protocol, endpoint],
    );
    if (same[0]) return toXml({ SubscriptionArn: snsSubscriptionArn(this.aws, topic, same[0].name) });

    const name = randomUUID();
    const config = await this.subscriptionConfig(topic, protocol, endpoint, effect);
    const isWebhook = config.protocol === 'http' || config.protocol === 'https';
    await this.pool.query(
      `INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, owner, sns_attributes)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'api', $10)`,
      [name, topic, config.protocol, endpointOf(config), subscriptionSettings(config), config.filterPolicy ?? null, config.filterPolicyScope, config.deadLetter?.topic ?? null, isWebhook ? generateSecret() : null, { ...attributes, Protocol: protocol, Endpoint: endpoint }],
    );
    await this.pool.query(`SELECT pg_notify('rowcast_config', '')`);
    return toXml({ SubscriptionArn: snsSubscriptionArn(this.aws, topic, name) });
  }

  /**
   * ConfirmSubscription: subscriptions made here are active at once (SubscriptionConfirmation is not sent yet), so a
   * token is only valid as the id of an existing subscription of the topic, which is answered with its ARN.
   */
  private async confirmSubscription(p: QueryParams): Promise<string> {
    const topic = this.topicParam(p, 'TopicArn');
    const token = p.required('Token');
    await this.findTopic(this.pool, topic, true);
    const { rows } = await this.pool.query<{ name: string }>('SELECT name FROM rowcast.subscriptions WHERE topic = $1 AND name = $2', [topic, token]);
    if (!rows[0]) throw invalidParameter('Invalid parameter: Token');
    return toXml({ SubscriptionArn: snsSubscriptionArn(this.aws, topic, rows[0].name) });
  }

  private async unsubscribe(p: QueryParams): Promise<null> {
    const sub = await this.findSubscription(p.required('SubscriptionArn'));
    this.assertApiMade(sub.owner, `subscription ${sub.name}`);
    await this.pool.query(`WITH gone AS (DELETE FROM rowcast.subscriptions WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`, [sub.name]);
    return null;
  }

  private async listSubscriptions(p: QueryParams, topic: string | null): Promise<string> {
    if (topic !== null) await this.findTopic(this.pool, topic, true);
    const after = decodeToken(p.get('NextToken'));
    const { rows } = await this.pool.query<SubscriptionRow>(
      `SELECT name, topic, protocol, endpoint, owner, sns_attributes FROM rowcast.subscriptions
        WHERE ($1::text IS NULL OR topic = $1) AND name > $2 ORDER BY name LIMIT $3`,
      [topic, after, this.pageSize + 1],
    );
    const page = rows.slice(0, this.pageSize);
    return toXml({
      Subscriptions: page.map((s) => ({
        SubscriptionArn: snsSubscriptionArn(this.aws, s.topic, s.name),
        Owner: this.aws.accountId,
        Protocol: this.protocolOf(s),
        Endpoint: this.endpointOf(s),
        TopicArn: snsTopicArn(this.aws, s.topic),
      })),
      NextToken: rows.length > this.pageSize ? encodeToken(page.at(-1)!.name) : undefined,
    });
  }

  private async getSubscriptionAttributes(p: QueryParams): Promise<string> {
    const s = await this.findSubscription(p.required('SubscriptionArn'));
    const attributes: Record<string, string> = {
      SubscriptionArn: snsSubscriptionArn(this.aws, s.topic, s.name),
      TopicArn: snsTopicArn(this.aws, s.topic),
      Owner: this.aws.accountId,
      Protocol: this.protocolOf(s),
      Endpoint: this.endpointOf(s),
      ConfirmationWasAuthenticated: 'true',
      PendingConfirmation: 'false',
      RawMessageDelivery: String(s.settings.format === 'raw'),
      FilterPolicyScope: s.filter_scope,
      EffectiveDeliveryPolicy: JSON.stringify({ rowcast: s.settings.deliveryPolicy ?? {} }),
      ...(s.filter_policy ? { FilterPolicy: JSON.stringify(s.filter_policy) } : {}),
      ...(s.dead_letter_topic ? { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: snsTopicArn(this.aws, s.dead_letter_topic) }) } : {}),
      ...(s.sns_attributes.DeliveryPolicy ? { DeliveryPolicy: s.sns_attributes.DeliveryPolicy } : {}),
    };
    return `<Attributes>${xmlEntries(attributes)}</Attributes>`;
  }

  private async setSubscriptionAttributes(p: QueryParams): Promise<null> {
    const s = await this.findSubscription(p.required('SubscriptionArn'));
    this.assertApiMade(s.owner, `subscription ${s.name}`);
    const attribute = p.required('AttributeName');
    const value = p.get('AttributeValue') ?? '';
    const effect = await this.subscriptionEffect({ [attribute]: value }, s.filter_scope);
    const current = await this.subscriptionEffectOf(s);
    const config = await this.subscriptionConfig(s.topic, s.sns_attributes.Protocol ?? s.protocol, s.sns_attributes.Endpoint ?? s.endpoint, {
      ...current,
      ...effect,
      deliveryPolicy: { ...current.deliveryPolicy, ...effect.deliveryPolicy },
    });
    await this.pool.query(
      `UPDATE rowcast.subscriptions SET settings = $2, filter_policy = $3, filter_scope = $4, dead_letter_topic = $5,
              sns_attributes = sns_attributes || jsonb_build_object($6::text, $7::text), updated_at = now()
        WHERE name = $1`,
      [s.name, subscriptionSettings(config), config.filterPolicy ?? null, config.filterPolicyScope, config.deadLetter?.topic ?? null, attribute, value],
    );
    await this.pool.query(`SELECT pg_notify('rowcast_config', '')`);
    return null;
  }

  /** The attributes' effect; a dead-letter topic must exist. */
  private async subscriptionEffect(attributes: Record<string, string>, scope: FilterPolicyScope): Promise<SubscriptionEffect> {
    // The scope first: the filter policy is checked against it.
    const names = Object.keys(attributes).sort((a, b) => Number(b === 'FilterPolicyScope') - Number(a === 'FilterPolicyScope'));
    let effect: SubscriptionEffect = {};
    for (const name of names) {
      const one = subscriptionAttribute(name, attributes[name]!, effect.filterPolicyScope ?? scope, topicOfArn);
      effect = { ...effect, ...one, deliveryPolicy: { ...effect.deliveryPolicy, ...one.deliveryPolicy } };
    }
    if (effect.deadLetterTopic) await this.findTopic(this.pool, effect.deadLetterTopic, true);
    return effect;
  }

  /** A stored subscription's current settings, as an effect to build on. */
  private async subscriptionEffectOf(s: SubscriptionRow): Promise<SubscriptionEffect> {
    const fromSns = s.sns_attributes.DeliveryPolicy ? subscriptionAttribute('DeliveryPolicy', s.sns_attributes.DeliveryPolicy, s.filter_scope, topicOfArn) : {};
    return { filterPolicy: s.filter_policy, filterPolicyScope: s.filter_scope, raw: s.settings.format === 'raw', deadLetterTopic: s.dead_letter_topic, deliveryPolicy: fromSns.deliveryPolicy ?? {} };
  }

  /** The subscription as a config would declare it, validated by the config's own schema (defaults included). */
  private async subscriptionConfig(topic: string, protocol: string, endpoint: string, effect: SubscriptionEffect) {
    const common = {
      topic,
      format: effect.raw ? 'raw' : 'envelope',
      ...(effect.filterPolicy ? { filterPolicy: effect.filterPolicy } : {}),
      filterPolicyScope: effect.filterPolicyScope ?? 'MessageAttributes',
      deliveryPolicy: effect.deliveryPolicy ?? {},
      ...(effect.deadLetterTopic ? { deadLetter: { topic: effect.deadLetterTopic } } : {}),
    };
    let input: Record<string, unknown>;
    if (protocol === 'http' || protocol === 'https') {
      if (!endpoint.startsWith(`${protocol}://`)) throw invalidParameter(`Invalid parameter: Endpoint must be an ${protocol}:// URL for protocol ${protocol}.`);
      input = { ...common, protocol, endpoint };
    } else if (protocol === 'email' || protocol === 'email-json') {
      const email = this.aws.sns?.email;
      if (!email) throw invalidParameter(`Invalid parameter: protocol ${protocol} needs aws.sns.email (from and smtp) in rowcast's config: the SMTP server that sends these subscriptions' mails.`);
      input = { ...common, protocol, options: { to: endpoint, from: email.from, smtp: email.smtp } };
    } else {
      // lambda: a function ARN (arn:aws:lambda:…:function:name); function: rowcast's name.
      const fn = protocol === 'lambda' ? /^function:([A-Za-z0-9_-]{1,64})(:.*)?$/.exec(parseArn(endpoint)?.service === 'lambda' ? parseArn(endpoint)!.resource : '')?.[1] : endpoint;
      if (!fn) throw invalidParameter('Invalid parameter: Endpoint must be a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>) naming a rowcast function.');
      const { rowCount } = await this.pool.query('SELECT 1 FROM rowcast.functions WHERE name = $1', [fn]);
      if (!rowCount) throw invalidParameter(`Invalid parameter: Endpoint: rowcast has no function ${fn} (declare it in the config and run rowcast apply).`);
      input = { ...common, protocol: 'function', function: fn };
    }
    const parsed = subscriptionSchema.safeParse(input);
    if (!parsed.success) throw invalidParameter(`Invalid parameter: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'Endpoint'}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  // ───────────────────────────── publishing ─────────────────────────────

  private async publish(p: QueryParams): Promise<string> {
    const topicName = publishTarget(p);
    return withTransaction(this.pool, async (client) => {
      const topic = (await this.findTopic(client, topicName, true))!;
      const message = newMessage(p, '', topic);
      await publishMessages(client, [message], null);
      await wakeDeliveries(client);
      const seq = topic.fifo ? await sequenceNumber(client, message.id) : undefined;
      return toXml({ MessageId: message.id, SequenceNumber: seq });
    });
  }

  private async publishBatch(p: QueryParams): Promise<string> {
    const topicName = this.topicParam(p, 'TopicArn');
    const entries = batchEntries(p);

    return withTransaction(this.pool, async (client) => {
      const topic = (await this.findTopic(client, topicName, true))!;
      const { ok, failed } = batchMessages(p, entries, topic);
      if (ok.length) {
        await publishMessages(client, ok.map((o) => o.message), null);
        await wakeDeliveries(client);
      }
      const successful = [];
      for (const o of ok) successful.push({ Id: o.id, MessageId: o.message.id, SequenceNumber: topic.fifo ? await sequenceNumber(client, o.message.id) : undefined });
      return toXml({ Successful: successful, Failed: failed });
    });
  }

  // ───────────────────────────── lookups ─────────────────────────────

  /** The topic an ARN parameter names (its last part); InvalidParameter if it is not a topic ARN. */
  private topicParam(p: QueryParams, param: string): string {
    const arn = p.required(param);
    const name = topicOfArn(arn);
    if (!name) throw invalidParameter(`Invalid parameter: ${param}: ${JSON.stringify(arn)} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>).`);
    return name;
  }

  private async findTopic(db: Pool | PoolClient, name: string, required: boolean): Promise<TopicRow | null> {
    const { rows } = await db.query<TopicRow>('SELECT name, fifo, owner, max_message_size, large_messages, sns_attributes FROM rowcast.topics WHERE name = $1', [name]);
    if (!rows[0] && required) throw notFound('Topic does not exist');
    return rows[0] ?? null;
  }

  private async findSubscription(arn: string): Promise<SubscriptionRow> {
    const parsed = parseArn(arn);
    const at = parsed?.service === 'sns' ? parsed.resource.lastIndexOf(':') : -1;
    if (!parsed || at < 1) throw invalidParameter(`Invalid parameter: SubscriptionArn: ${JSON.stringify(arn)} is not a subscription ARN (arn:aws:sns:<region>:<account>:<topic>:<id>).`);
    const { rows } = await this.pool.query<SubscriptionRow>(
      `SELECT name, topic, protocol, endpoint, owner, settings, filter_policy, filter_scope, dead_letter_topic, sns_attributes
         FROM rowcast.subscriptions WHERE topic = $1 AND name = $2`,
      [parsed.resource.slice(0, at), parsed.resource.slice(at + 1)],
    );
    if (!rows[0]) throw notFound('Subscription does not exist');
    return rows[0];
  }

  /** Config-declared topics and subscriptions change through the config, or the next apply would undo the change. */
  private assertApiMade(owner: 'config' | 'api', what: string): void {
    if (owner !== 'api') throw new SnsError('AuthorizationError', `${what} is declared in rowcast's config: change or remove it there and run rowcast apply.`, 403);
  }

  private protocolOf(s: Pick<SubscriptionRow, 'protocol' | 'sns_attributes'>): string {
    return s.sns_attributes.Protocol ?? (s.protocol === 'function' ? 'lambda' : s.protocol);
  }

  /** What the subscriber asked for (API-made), or where a config subscription delivers (credentials masked). */
  private endpointOf(s: Pick<SubscriptionRow, 'protocol' | 'endpoint' | 'sns_attributes'>): string {
    if (s.sns_attributes.Endpoint !== undefined) return redactEndpoint(s.sns_attributes.Endpoint);
    if (s.protocol === 'function') return `arn:aws:lambda:${this.aws.region}:${this.aws.accountId}:function:${s.endpoint}`;
    return redactEndpoint(s.endpoint.replace(/^mailto:/, ''));
  }
}

/**
 * Wakes every process's delivery worker (and topic streams) at the commit, so the deliveries start now rather than
 * at the next poll. Unlike capture triggers, a Publish always notifies: it is one HTTP request per transaction anyway.
 */
async function wakeDeliveries(client: PoolClient): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, DELIVERIES_PAYLOAD]);
}

async function sequenceNumber(client: PoolClient, id: string): Promise<string> {
  const { rows } = await client.query<{ seq: string }>(`SELECT lpad(seq::text, 20, '0') AS seq FROM rowcast.messages WHERE id = $1`, [id]);
  // A FIFO duplicate was dropped: SNS still answers; its sequence number is not known here.
  return rows[0]?.seq ?? '0'.repeat(20);
}

/** SNS's default topic policy (the owner may do everything), for GetTopicAttributes. */
function defaultPolicy(arn: string, account: string): string {
  return JSON.stringify({
    Version: '2008-10-17',
    Id: '__default_policy_ID',
    Statement: [{ Sid: '__default_statement_ID', Effect: 'Allow', Principal: { AWS: '*' }, Action: ['SNS:Publish', 'SNS:Subscribe', 'SNS:GetTopicAttributes', 'SNS:SetTopicAttributes', 'SNS:DeleteTopic', 'SNS:ListSubscriptionsByTopic'], Resource: arn, Condition: { StringEquals: { 'AWS:SourceOwner': account } } }],
  });
}

import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { endpointOf, subscriptionSettings } from '../admin/apply.js';
import { type AwsConfig, subscriptionSchema, TOPIC_NAME } from '../config/schema.js';
import type { FilterPolicyScope } from '../model/filter-policy/filter-policy.js';
import { generateSecret } from '../delivery/sinks/http/webhook-secret.js';
import { DELIVERIES_PAYLOAD, WAKE_CHANNEL } from '../queue/listener.js';
import { redactEndpoint } from '../observability/redact.js';
import { type Pool, type PoolClient, withTransaction } from '../store/pool.js';
import { type NewMessage, publishMessages } from '../routing/fan-out.js';
import { parseArn, snsSubscriptionArn, snsTopicArn, topicOfArn } from '../model/arn.js';
import {
  confirmSubscription,
  requireConfirmation,
  TOKEN_LIFETIME_DAYS,
  tokenExpired,
} from '../delivery/sns-envelope/confirmation.js';
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
  settings: { format?: string; rawMessageDelivery?: boolean; deliveryPolicy?: Record<string, unknown> };
  sns_state: 'pending_confirmation' | 'confirmed' | 'unsubscribed';
  filter_policy: object | null;
  filter_scope: FilterPolicyScope;
  dead_letter_topic: string | null;
  sns_attributes: Record<string, string>;
}

const encodeToken = (last: string) => Buffer.from(last, 'utf8').toString('base64url');
function decodeToken(token: string | undefined): string {
  if (token === undefined || token === '') return '';
  const value = Buffer.from(token, 'base64url').toString('utf8');
  if (!value || encodeToken(value) !== token)
    throw invalidParameter('Invalid parameter: NextToken (pass the NextToken of the previous answer unchanged)');
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
    const differs =
      topic.fifo !== fifo ||
      Object.entries(attributes).some(([k, v]) => k !== 'FifoTopic' && (topic.sns_attributes[k] ?? '') !== v);
    if (differs)
      throw invalidParameter(
        `Invalid parameter: Attributes Reason: Topic already exists with different attributes (topic ${name}).`,
      );
    return toXml({ TopicArn: snsTopicArn(this.aws, name) });
  }

  private async deleteTopic(p: QueryParams): Promise<null> {
    const name = this.topicParam(p, 'TopicArn');
    const topic = await this.findTopic(this.pool, name, false);
    // Deleting a topic that does not exist succeeds, as in SNS.
    if (!topic) return null;
    this.assertApiMade(topic.owner, `topic ${name}`);
    await this.pool.query(
      `WITH gone AS (DELETE FROM rowcast.topics WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`,
      [name],
    );
    return null;
  }

  private async listTopics(p: QueryParams): Promise<string> {
    const after = decodeToken(p.get('NextToken'));
    const { rows } = await this.pool.query<{ name: string }>(
      'SELECT name FROM rowcast.topics WHERE name > $1 ORDER BY name LIMIT $2',
      [after, this.pageSize + 1],
    );
    const page = rows.slice(0, this.pageSize);
    return toXml({
      Topics: page.map((r) => ({ TopicArn: snsTopicArn(this.aws, r.name) })),
      NextToken: rows.length > this.pageSize ? encodeToken(page.at(-1)!.name) : undefined,
    });
  }

  private async getTopicAttributes(p: QueryParams): Promise<string> {
    const name = this.topicParam(p, 'TopicArn');
    const topic = (await this.findTopic(this.pool, name, true))!;
    const { rows } = await this.pool.query<{ confirmed: number; pending: number; deleted: number }>(
      `SELECT count(*) FILTER (WHERE sns_state = 'confirmed')::int AS confirmed, count(*) FILTER (WHERE sns_state = 'pending_confirmation')::int AS pending,
              count(*) FILTER (WHERE sns_state = 'unsubscribed')::int AS deleted
         FROM rowcast.subscriptions WHERE topic = $1`,
      [name],
    );
    const arn = snsTopicArn(this.aws, name);
    const attributes: Record<string, string> = {
      TopicArn: arn,
      Owner: this.aws.accountId,
      DisplayName: '',
      SignatureVersion: '1',
      Policy: defaultPolicy(arn, this.aws.accountId),
      ...topic.sns_attributes,
      SubscriptionsConfirmed: String(rows[0]!.confirmed),
      SubscriptionsPending: String(rows[0]!.pending),
      SubscriptionsDeleted: String(rows[0]!.deleted),
      ...(topic.fifo
        ? { FifoTopic: 'true', ContentBasedDeduplication: topic.sns_attributes.ContentBasedDeduplication ?? 'false' }
        : {}),
    };
    return `<Attributes>${xmlEntries(attributes)}</Attributes>`;
  }

  private async setTopicAttributes(p: QueryParams): Promise<null> {
    const name = this.topicParam(p, 'TopicArn');
    const attribute = p.required('AttributeName');
    const value = p.get('AttributeValue') ?? '';
    const topic = (await this.findTopic(this.pool, name, true))!;
    if (attribute === 'FifoTopic')
      throw invalidParameter(
        'Invalid parameter: AttributeName: FifoTopic cannot be changed after the topic is created.',
      );
    checkTopicAttributes({ [attribute]: value }, topic.fifo);
    // Topic attributes the config does not declare (DisplayName, Policy, …) may change on config topics too.
    await this.pool.query(
      `UPDATE rowcast.topics SET sns_attributes = sns_attributes || jsonb_build_object($2::text, $3::text), updated_at = now() WHERE name = $1`,
      [name, attribute, value],
    );
    return null;
  }

  // ───────────────────────────── subscriptions ─────────────────────────────

  private async subscribe(p: QueryParams): Promise<string> {
    const topic = this.topicParam(p, 'TopicArn');
    const protocol = p.required('Protocol').toLowerCase();
    const endpoint = p.get('Endpoint') ?? '';
    if (!(SUBSCRIBE_PROTOCOLS as readonly string[]).includes(protocol)) {
      throw invalidParameter(
        `Invalid parameter: Amazon SNS protocol ${protocol} is not supported by rowcast; use one of ${SUBSCRIBE_PROTOCOLS.join(', ')}.`,
      );
    }
    if (!endpoint) throw invalidParameter(`Invalid parameter: Endpoint is required for protocol ${protocol}.`);
    const returnArn = p.get('ReturnSubscriptionArn') === 'true';
    await this.findTopic(this.pool, topic, true);
    const attributes = p.entries('Attributes');
    const effect = await this.subscriptionEffect(attributes, 'MessageAttributes');
    // http, https, email and email-json get SNS's envelope and confirm first; lambda and function are active at once.
    const handshake = SNS_ENVELOPE_PROTOCOLS.has(protocol);
    const config = await this.subscriptionConfig(topic, protocol, endpoint, effect, handshake);
    // SNS answers "pending confirmation" until the endpoint confirms, unless asked for the ARN.
    const answer = (name: string, pending: boolean) =>
      toXml({
        SubscriptionArn: pending && !returnArn ? 'pending confirmation' : snsSubscriptionArn(this.aws, topic, name),
      });

    return withTransaction(this.pool, async (client) => {
      // The same endpoint on the same topic is the same subscription (SNS answers with its ARN again), unless other
      // attributes are asked for. Locked, so that two Subscribes of one endpoint make one subscription.
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 17))', [
        JSON.stringify([topic, protocol, endpoint]),
      ]);
      const { rows: same } = await client.query<{
        name: string;
        sns_state: SubscriptionRow['sns_state'];
        sns_attributes: Record<string, string>;
        settings: { format?: string };
      }>(
        `SELECT name, sns_state, sns_attributes, settings FROM rowcast.subscriptions WHERE topic = $1 AND owner = 'api' AND sns_attributes ->> 'Protocol' = $2 AND sns_attributes ->> 'Endpoint' = $3`,
        [topic, protocol, endpoint],
      );
      if (same[0]) {
        const existing = same[0];
        if (Object.entries(attributes).some(([k, v]) => !sameAttribute(k, existing.sns_attributes[k], v))) {
          throw invalidParameter(
            'Invalid parameter: Attributes Reason: Subscription already exists with different attributes',
          );
        }
        // Not confirmed yet (or unsubscribed through its UnsubscribeURL): a new SubscriptionConfirmation, as SNS sends.
        if (existing.sns_state !== 'confirmed' && existing.settings.format === 'sns') {
          await requireConfirmation(client, existing.name);
          return answer(existing.name, true);
        }
        return answer(existing.name, false);
      }

      const name = randomUUID();
      const isWebhook = config.protocol === 'http' || config.protocol === 'https';
      await client.query(
        `INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, owner, sns_attributes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'api', $10)`,
        [
          name,
          topic,
          config.protocol,
          endpointOf(config),
          subscriptionSettings(config),
          config.filterPolicy ?? null,
          config.filterPolicyScope,
          config.deadLetter?.topic ?? null,
          isWebhook ? generateSecret() : null,
          { ...attributes, Protocol: protocol, Endpoint: endpoint },
        ],
      );
      if (handshake) await requireConfirmation(client, name);
      else await client.query(`SELECT pg_notify('rowcast_config', '')`);
      return answer(name, handshake);
    });
  }

  /**
   * ConfirmSubscription: the token of a SubscriptionConfirmation (SubscribeURL's Token) confirms its subscription.
   * Signed, so the confirmation was authenticated; AuthenticateOnUnsubscribe=true then refuses its unsigned
   * UnsubscribeURL (Unsubscribe through this API is always signed).
   */
  private async confirmSubscription(p: QueryParams): Promise<string> {
    const topic = this.topicParam(p, 'TopicArn');
    const token = p.required('Token');
    const authenticateOnUnsubscribe = p.get('AuthenticateOnUnsubscribe') ?? 'false';
    if (authenticateOnUnsubscribe !== 'true' && authenticateOnUnsubscribe !== 'false')
      throw invalidParameter('Invalid parameter: AuthenticateOnUnsubscribe must be true or false.');
    await this.findTopic(this.pool, topic, true);
    const name = await confirmSubscription(this.pool, topic, token, {
      authenticated: true,
      authenticateOnUnsubscribe: authenticateOnUnsubscribe === 'true',
    });
    if (!name) {
      throw invalidParameter(
        (await tokenExpired(this.pool, topic, token))
          ? `Invalid token: it expired (confirmation tokens are valid for ${TOKEN_LIFETIME_DAYS} days); Subscribe again for a new SubscriptionConfirmation.`
          : 'Invalid token',
      );
    }
    return toXml({ SubscriptionArn: snsSubscriptionArn(this.aws, topic, name) });
  }

  private async unsubscribe(p: QueryParams): Promise<null> {
    const sub = await this.findSubscription(p.required('SubscriptionArn'));
    this.assertApiMade(sub.owner, `subscription ${sub.name}`);
    await this.pool.query(
      `WITH gone AS (DELETE FROM rowcast.subscriptions WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`,
      [sub.name],
    );
    return null;
  }

  private async listSubscriptions(p: QueryParams, topic: string | null): Promise<string> {
    if (topic !== null) await this.findTopic(this.pool, topic, true);
    const after = decodeToken(p.get('NextToken'));
    const { rows } = await this.pool.query<SubscriptionRow>(
      `SELECT name, topic, protocol, endpoint, owner, sns_attributes, sns_state FROM rowcast.subscriptions
        WHERE ($1::text IS NULL OR topic = $1) AND name > $2 ORDER BY name LIMIT $3`,
      [topic, after, this.pageSize + 1],
    );
    const page = rows.slice(0, this.pageSize);
    return toXml({
      Subscriptions: page.map((s) => ({
        // As SNS lists a subscription waiting for its endpoint's confirmation.
        SubscriptionArn:
          s.sns_state === 'pending_confirmation'
            ? 'PendingConfirmation'
            : snsSubscriptionArn(this.aws, s.topic, s.name),
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
      // Confirmed through the signed ConfirmSubscription, or made active at once (lambda, config): true.
      ConfirmationWasAuthenticated:
        s.sns_attributes.ConfirmationWasAuthenticated ?? String(s.sns_state === 'confirmed'),
      PendingConfirmation: String(s.sns_state === 'pending_confirmation'),
      RawMessageDelivery: String(rawOf(s)),
      FilterPolicyScope: s.filter_scope,
      EffectiveDeliveryPolicy: JSON.stringify({ rowcast: s.settings.deliveryPolicy ?? {} }),
      ...(s.filter_policy ? { FilterPolicy: JSON.stringify(s.filter_policy) } : {}),
      ...(s.dead_letter_topic
        ? { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: snsTopicArn(this.aws, s.dead_letter_topic) }) }
        : {}),
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
    // Subscriptions made before the API made SNS envelopes keep rowcast's.
    const config = await this.subscriptionConfig(
      s.topic,
      s.sns_attributes.Protocol ?? s.protocol,
      s.sns_attributes.Endpoint ?? s.endpoint,
      {
        ...current,
        ...effect,
        deliveryPolicy: { ...current.deliveryPolicy, ...effect.deliveryPolicy },
      },
      s.settings.format === 'sns',
    );
    await this.pool.query(
      `UPDATE rowcast.subscriptions SET settings = $2, filter_policy = $3, filter_scope = $4, dead_letter_topic = $5,
              sns_attributes = sns_attributes || jsonb_build_object($6::text, $7::text), updated_at = now()
        WHERE name = $1`,
      [
        s.name,
        subscriptionSettings(config),
        config.filterPolicy ?? null,
        config.filterPolicyScope,
        config.deadLetter?.topic ?? null,
        attribute,
        value,
      ],
    );
    await this.pool.query(`SELECT pg_notify('rowcast_config', '')`);
    return null;
  }

  /** The attributes' effect; a dead-letter topic must exist. */
  private async subscriptionEffect(
    attributes: Record<string, string>,
    scope: FilterPolicyScope,
  ): Promise<SubscriptionEffect> {
    // The scope first: the filter policy is checked against it.
    const names = Object.keys(attributes).sort(
      (a, b) => Number(b === 'FilterPolicyScope') - Number(a === 'FilterPolicyScope'),
    );
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
    const fromSns = s.sns_attributes.DeliveryPolicy
      ? subscriptionAttribute('DeliveryPolicy', s.sns_attributes.DeliveryPolicy, s.filter_scope, topicOfArn)
      : {};
    return {
      filterPolicy: s.filter_policy,
      filterPolicyScope: s.filter_scope,
      raw: rawOf(s),
      deadLetterTopic: s.dead_letter_topic,
      deliveryPolicy: fromSns.deliveryPolicy ?? {},
    };
  }

  /**
   * The subscription as a config would declare it, validated by the config's own schema (defaults included).
   * `sns`: SNS's envelope and handshake (format 'sns', confirmation required), for http, https, email and email-json.
   */
  private async subscriptionConfig(
    topic: string,
    protocol: string,
    endpoint: string,
    effect: SubscriptionEffect,
    sns: boolean,
  ) {
    // As SNS: raw delivery is for HTTP(S) (and SQS, Firehose); rowcast's own function protocol has its raw format.
    if (effect.raw && !['http', 'https', 'function'].includes(protocol)) {
      throw invalidParameter(
        `Invalid parameter: Attributes Reason: Delivery protocol [${protocol}] does not support raw message delivery.`,
      );
    }
    const common = {
      topic,
      format: sns ? 'sns' : effect.raw ? 'raw' : 'envelope',
      ...(effect.filterPolicy ? { filterPolicy: effect.filterPolicy } : {}),
      filterPolicyScope: effect.filterPolicyScope ?? 'MessageAttributes',
      deliveryPolicy: effect.deliveryPolicy ?? {},
      ...(effect.deadLetterTopic ? { deadLetter: { topic: effect.deadLetterTopic } } : {}),
    };
    let input: Record<string, unknown>;
    if (protocol === 'http' || protocol === 'https') {
      if (!endpoint.startsWith(`${protocol}://`))
        throw invalidParameter(`Invalid parameter: Endpoint must be an ${protocol}:// URL for protocol ${protocol}.`);
      input = {
        ...common,
        protocol,
        endpoint,
        ...(sns ? { rawMessageDelivery: effect.raw ?? false, confirmation: 'required' } : {}),
      };
    } else if (protocol === 'email' || protocol === 'email-json') {
      const email = this.aws.sns?.email;
      if (!email)
        throw invalidParameter(
          `Invalid parameter: protocol ${protocol} needs aws.sns.email (from and smtp) in rowcast's config: the SMTP server that sends these subscriptions' mails.`,
        );
      input = { ...common, protocol, options: { to: endpoint, from: email.from, smtp: email.smtp } };
    } else {
      // lambda: a function ARN (arn:aws:lambda:…:function:name); function: rowcast's name.
      const fn =
        protocol === 'lambda'
          ? /^function:([A-Za-z0-9_-]{1,64})(:.*)?$/.exec(
              parseArn(endpoint)?.service === 'lambda' ? parseArn(endpoint)!.resource : '',
            )?.[1]
          : endpoint;
      if (!fn)
        throw invalidParameter(
          'Invalid parameter: Endpoint must be a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>) naming a rowcast function.',
        );
      const { rowCount } = await this.pool.query('SELECT 1 FROM rowcast.functions WHERE name = $1', [fn]);
      if (!rowCount)
        throw invalidParameter(
          `Invalid parameter: Endpoint: rowcast has no function ${fn} (declare it in the config and run rowcast apply).`,
        );
      input = { ...common, protocol: 'function', function: fn };
    }
    const parsed = subscriptionSchema.safeParse(input);
    if (!parsed.success)
      throw invalidParameter(
        `Invalid parameter: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'Endpoint'}: ${i.message}`).join('; ')}`,
      );
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
      const fifo = topic.fifo ? await fifoAnswer(client, message) : undefined;
      return toXml({ MessageId: fifo?.id ?? message.id, SequenceNumber: fifo?.seq });
    });
  }

  private async publishBatch(p: QueryParams): Promise<string> {
    const topicName = this.topicParam(p, 'TopicArn');
    const entries = batchEntries(p);

    return withTransaction(this.pool, async (client) => {
      const topic = (await this.findTopic(client, topicName, true))!;
      const { ok, failed } = batchMessages(p, entries, topic);
      if (ok.length) {
        await publishMessages(
          client,
          ok.map((o) => o.message),
          null,
        );
        await wakeDeliveries(client);
      }
      const successful = [];
      for (const o of ok) {
        const fifo = topic.fifo ? await fifoAnswer(client, o.message) : undefined;
        successful.push({ Id: o.id, MessageId: fifo?.id ?? o.message.id, SequenceNumber: fifo?.seq });
      }
      return toXml({ Successful: successful, Failed: failed });
    });
  }

  // ───────────────────────────── lookups ─────────────────────────────

  /** The topic an ARN parameter names (its last part); InvalidParameter if it is not a topic ARN. */
  private topicParam(p: QueryParams, param: string): string {
    const arn = p.required(param);
    const name = topicOfArn(arn);
    if (!name)
      throw invalidParameter(
        `Invalid parameter: ${param}: ${JSON.stringify(arn)} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>).`,
      );
    return name;
  }

  private async findTopic(db: Pool | PoolClient, name: string, required: boolean): Promise<TopicRow | null> {
    const { rows } = await db.query<TopicRow>(
      'SELECT name, fifo, owner, max_message_size, large_messages, sns_attributes FROM rowcast.topics WHERE name = $1',
      [name],
    );
    if (!rows[0] && required) throw notFound('Topic does not exist');
    return rows[0] ?? null;
  }

  private async findSubscription(arn: string): Promise<SubscriptionRow> {
    const parsed = parseArn(arn);
    const at = parsed?.service === 'sns' ? parsed.resource.lastIndexOf(':') : -1;
    if (!parsed || at < 1)
      throw invalidParameter(
        `Invalid parameter: SubscriptionArn: ${JSON.stringify(arn)} is not a subscription ARN (arn:aws:sns:<region>:<account>:<topic>:<id>).`,
      );
    const { rows } = await this.pool.query<SubscriptionRow>(
      `SELECT name, topic, protocol, endpoint, owner, settings, filter_policy, filter_scope, dead_letter_topic, sns_attributes, sns_state
         FROM rowcast.subscriptions WHERE topic = $1 AND name = $2`,
      [parsed.resource.slice(0, at), parsed.resource.slice(at + 1)],
    );
    if (!rows[0]) throw notFound('Subscription does not exist');
    return rows[0];
  }

  /** Config-declared topics and subscriptions change through the config, or the next apply would undo the change. */
  private assertApiMade(owner: 'config' | 'api', what: string): void {
    if (owner !== 'api')
      throw new SnsError(
        'AuthorizationError',
        `${what} is declared in rowcast's config: change or remove it there and run rowcast apply.`,
        403,
      );
  }

  private protocolOf(s: Pick<SubscriptionRow, 'protocol' | 'sns_attributes'>): string {
    return s.sns_attributes.Protocol ?? (s.protocol === 'function' ? 'lambda' : s.protocol);
  }

  /** What the subscriber asked for (API-made), or where a config subscription delivers (credentials masked). */
  private endpointOf(s: Pick<SubscriptionRow, 'protocol' | 'endpoint' | 'sns_attributes'>): string {
    if (s.sns_attributes.Endpoint !== undefined) return redactEndpoint(s.sns_attributes.Endpoint);
    if (s.protocol === 'function')
      return `arn:aws:lambda:${this.aws.region}:${this.aws.accountId}:function:${s.endpoint}`;
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

/**
 * A FIFO message's MessageId and SequenceNumber. A duplicate (dropped by the fan-out) is answered as SNS answers
 * it: with the id and sequence number of the message its deduplication id let through.
 */
async function fifoAnswer(client: PoolClient, message: NewMessage): Promise<{ id: string; seq: string }> {
  const { rows } = await client.query<{ id: string; seq: string }>(
    `SELECT id::text, lpad(seq::text, 20, '0') AS seq FROM rowcast.messages WHERE id = $1
     UNION ALL
     SELECT m.id::text, lpad(m.seq::text, 20, '0') FROM rowcast.dedup d JOIN rowcast.messages m ON m.id = d.message_id WHERE d.topic = $2 AND d.dedup_key = $3
     LIMIT 1`,
    [message.id, message.topic, message.dedupKey ?? null],
  );
  // The original is gone (retention) or predates the record of ids: its number is not known here.
  return rows[0] ?? { id: message.id, seq: '0'.repeat(20) };
}

/** Whether a subscription gets the bare message: SNS's RawMessageDelivery, or rowcast's raw format. */
const rawOf = (s: Pick<SubscriptionRow, 'settings'>): boolean =>
  s.settings.format === 'raw' || s.settings.rawMessageDelivery === true;

/** Protocols whose API subscriptions get SNS's envelope and confirm first (SubscriptionConfirmation). */
const SNS_ENVELOPE_PROTOCOLS = new Set(['http', 'https', 'email', 'email-json']);

/** Defaults of subscription attributes, to compare a Subscribe's attributes with a subscription's. */
const ATTRIBUTE_DEFAULTS: Record<string, string> = {
  RawMessageDelivery: 'false',
  FilterPolicyScope: 'MessageAttributes',
};

/** Whether an attribute asked for equals the subscription's (JSON ones compared as JSON). */
function sameAttribute(name: string, current: string | undefined, asked: string): boolean {
  const have = current ?? ATTRIBUTE_DEFAULTS[name] ?? '';
  if (have === asked) return true;
  const json = (v: string): unknown => {
    try {
      return v.trim() === '' ? null : JSON.parse(v);
    } catch {
      return v;
    }
  };
  return isDeepStrictEqual(json(have), json(asked));
}

/** SNS's default topic policy (the owner may do everything), for GetTopicAttributes. */
function defaultPolicy(arn: string, account: string): string {
  return JSON.stringify({
    Version: '2008-10-17',
    Id: '__default_policy_ID',
    Statement: [
      {
        Sid: '__default_statement_ID',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: [
          'SNS:Publish',
          'SNS:Subscribe',
          'SNS:GetTopicAttributes',
          'SNS:SetTopicAttributes',
          'SNS:DeleteTopic',
          'SNS:ListSubscriptionsByTopic',
        ],
        Resource: arn,
        Condition: { StringEquals: { 'AWS:SourceOwner': account } },
      },
    ],
  });
}

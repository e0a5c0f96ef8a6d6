import { LOG_END_SQL } from '../store/log-leases.js';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { endpointOf, subscriptionSettings } from '../admin/config/subscription-settings.js';
import { subscriptionSchema } from '../config/subscription-schema.js';
import type { FilterPolicyScope } from '../model/filter-policy/filter-policy.js';
import { generateSecret } from '../delivery/sinks/http/webhook-secret.js';
import { type QueryParams, invalidParameter, toXml, xmlEntries } from './query-protocol.js';
import { parseArn, snsSubscriptionArn, snsTopicArn, topicOfArn } from '../model/arn.js';
import {
  confirmSubscription,
  requireConfirmation,
  TOKEN_LIFETIME_DAYS,
  tokenExpired,
} from '../delivery/sns-envelope/confirmation.js';
import { type SubscriptionEffect, subscriptionAttribute } from './sns-attributes.js';
import { withTransaction } from '../store/pool.js';
import {
  assertApiMade,
  decodeToken,
  encodeToken,
  findSubscription,
  findTopic,
  type Operation,
  protocolOf,
  shownEndpoint,
  type SnsContext,
  type SubscriptionRow,
  topicParam,
} from './sns-lookups.js';

/** Protocols Subscribe accepts: SNS's http, https, email, email-json and lambda, and rowcast's function. */
export const SUBSCRIBE_PROTOCOLS = ['http', 'https', 'email', 'email-json', 'lambda', 'function'] as const;

/**
 * Subscribe, ConfirmSubscription, Unsubscribe, the two List operations and Get/SetSubscriptionAttributes: rows of
 * rowcast.subscriptions, each validated as the config would declare it.
 */
export function subscriptionOperations(ctx: SnsContext): Record<string, Operation> {
  return {
    Subscribe: (p) => subscribe(ctx, p),
    ConfirmSubscription: (p) => confirmSubscriptionAction(ctx, p),
    Unsubscribe: (p) => unsubscribe(ctx, p),
    ListSubscriptions: (p) => listSubscriptions(ctx, p, null),
    ListSubscriptionsByTopic: (p) => listSubscriptions(ctx, p, topicParam(p, 'TopicArn')),
    GetSubscriptionAttributes: (p) => getSubscriptionAttributes(ctx, p),
    SetSubscriptionAttributes: (p) => setSubscriptionAttributes(ctx, p),
  };
}

async function subscribe(ctx: SnsContext, p: QueryParams): Promise<string> {
  const topic = topicParam(p, 'TopicArn');
  const protocol = p.required('Protocol').toLowerCase();
  const endpoint = p.get('Endpoint') ?? '';
  if (!(SUBSCRIBE_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw invalidParameter(
      `Invalid parameter: Amazon SNS protocol ${protocol} is not supported by rowcast; use one of ${SUBSCRIBE_PROTOCOLS.join(', ')}.`,
    );
  }
  if (!endpoint) throw invalidParameter(`Invalid parameter: Endpoint is required for protocol ${protocol}.`);
  const returnArn = p.get('ReturnSubscriptionArn') === 'true';
  await findTopic(ctx.pool, topic, true);
  const attributes = p.entries('Attributes');
  const effect = await subscriptionEffect(ctx, attributes, 'MessageAttributes');
  // http, https, email and email-json get SNS's envelope and confirm first; lambda and function are active at once.
  const handshake = SNS_ENVELOPE_PROTOCOLS.has(protocol);
  const config = await subscriptionConfig(ctx, topic, protocol, endpoint, effect, handshake);
  // SNS answers "pending confirmation" until the endpoint confirms, unless asked for the ARN.
  const answer = (name: string, pending: boolean) =>
    toXml({
      SubscriptionArn: pending && !returnArn ? 'pending confirmation' : snsSubscriptionArn(ctx.aws, topic, name),
    });

  return withTransaction(ctx.pool, async (client) => {
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
    // Through a cursor (the default) it reads the topic from the next message on, as a new config subscription does
    // (apply's cursorStart); awaiting its confirmation, the cursor passes what is published meanwhile.
    await client.query(
      `WITH s AS (
         INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, owner, sns_attributes, cursor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'api', $10, $11) RETURNING name, cursor)
       INSERT INTO rowcast.cursors (subscription, leased_to, start_seq)
       SELECT s.name, e.seq, e.seq
         FROM s, (SELECT ${LOG_END_SQL} AS seq) e WHERE s.cursor`,
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
        config.cursor,
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
async function confirmSubscriptionAction(ctx: SnsContext, p: QueryParams): Promise<string> {
  const topic = topicParam(p, 'TopicArn');
  const token = p.required('Token');
  const authenticateOnUnsubscribe = p.get('AuthenticateOnUnsubscribe') ?? 'false';
  if (authenticateOnUnsubscribe !== 'true' && authenticateOnUnsubscribe !== 'false')
    throw invalidParameter('Invalid parameter: AuthenticateOnUnsubscribe must be true or false.');
  await findTopic(ctx.pool, topic, true);
  const name = await confirmSubscription(ctx.pool, topic, token, {
    authenticated: true,
    authenticateOnUnsubscribe: authenticateOnUnsubscribe === 'true',
  });
  if (!name) {
    throw invalidParameter(
      (await tokenExpired(ctx.pool, topic, token))
        ? `Invalid token: it expired (confirmation tokens are valid for ${TOKEN_LIFETIME_DAYS} days); Subscribe again for a new SubscriptionConfirmation.`
        : 'Invalid token',
    );
  }
  return toXml({ SubscriptionArn: snsSubscriptionArn(ctx.aws, topic, name) });
}

async function unsubscribe(ctx: SnsContext, p: QueryParams): Promise<null> {
  const sub = await findSubscription(ctx.pool, p.required('SubscriptionArn'));
  assertApiMade(sub.owner, `subscription ${sub.name}`);
  await ctx.pool.query(
    `WITH gone AS (DELETE FROM rowcast.subscriptions WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`,
    [sub.name],
  );
  return null;
}

async function listSubscriptions(ctx: SnsContext, p: QueryParams, topic: string | null): Promise<string> {
  if (topic !== null) await findTopic(ctx.pool, topic, true);
  const after = decodeToken(p.get('NextToken'));
  const { rows } = await ctx.pool.query<SubscriptionRow>(
    `SELECT name, topic, protocol, endpoint, owner, sns_attributes, sns_state FROM rowcast.subscriptions
      WHERE ($1::text IS NULL OR topic = $1) AND name > $2 ORDER BY name LIMIT $3`,
    [topic, after, ctx.pageSize + 1],
  );
  const page = rows.slice(0, ctx.pageSize);
  return toXml({
    Subscriptions: page.map((s) => ({
      // As SNS lists a subscription waiting for its endpoint's confirmation.
      SubscriptionArn:
        s.sns_state === 'pending_confirmation' ? 'PendingConfirmation' : snsSubscriptionArn(ctx.aws, s.topic, s.name),
      Owner: ctx.aws.accountId,
      Protocol: protocolOf(s),
      Endpoint: shownEndpoint(ctx.aws, s),
      TopicArn: snsTopicArn(ctx.aws, s.topic),
    })),
    NextToken: rows.length > ctx.pageSize ? encodeToken(page.at(-1)!.name) : undefined,
  });
}

async function getSubscriptionAttributes(ctx: SnsContext, p: QueryParams): Promise<string> {
  const s = await findSubscription(ctx.pool, p.required('SubscriptionArn'));
  const attributes: Record<string, string> = {
    SubscriptionArn: snsSubscriptionArn(ctx.aws, s.topic, s.name),
    TopicArn: snsTopicArn(ctx.aws, s.topic),
    Owner: ctx.aws.accountId,
    Protocol: protocolOf(s),
    Endpoint: shownEndpoint(ctx.aws, s),
    // Confirmed through the signed ConfirmSubscription, or made active at once (lambda, config): true.
    ConfirmationWasAuthenticated: s.sns_attributes.ConfirmationWasAuthenticated ?? String(s.sns_state === 'confirmed'),
    PendingConfirmation: String(s.sns_state === 'pending_confirmation'),
    RawMessageDelivery: String(rawOf(s)),
    FilterPolicyScope: s.filter_scope,
    EffectiveDeliveryPolicy: JSON.stringify({ rowcast: s.settings.deliveryPolicy ?? {} }),
    ...(s.filter_policy ? { FilterPolicy: JSON.stringify(s.filter_policy) } : {}),
    ...(s.dead_letter_topic
      ? { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: snsTopicArn(ctx.aws, s.dead_letter_topic) }) }
      : {}),
    ...(s.sns_attributes.DeliveryPolicy ? { DeliveryPolicy: s.sns_attributes.DeliveryPolicy } : {}),
  };
  return `<Attributes>${xmlEntries(attributes)}</Attributes>`;
}

async function setSubscriptionAttributes(ctx: SnsContext, p: QueryParams): Promise<null> {
  const s = await findSubscription(ctx.pool, p.required('SubscriptionArn'));
  assertApiMade(s.owner, `subscription ${s.name}`);
  const attribute = p.required('AttributeName');
  const value = p.get('AttributeValue') ?? '';
  const effect = await subscriptionEffect(ctx, { [attribute]: value }, s.filter_scope);
  const current = await subscriptionEffectOf(s);
  // Subscriptions made before the API made SNS envelopes keep rowcast's.
  const config = await subscriptionConfig(
    ctx,
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
  await ctx.pool.query(
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
  await ctx.pool.query(`SELECT pg_notify('rowcast_config', '')`);
  return null;
}

/** The attributes' effect; a dead-letter topic must exist. */
async function subscriptionEffect(
  ctx: SnsContext,
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
  if (effect.deadLetterTopic) await findTopic(ctx.pool, effect.deadLetterTopic, true);
  return effect;
}

/** A stored subscription's current settings, as an effect to build on. */
async function subscriptionEffectOf(s: SubscriptionRow): Promise<SubscriptionEffect> {
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
async function subscriptionConfig(
  ctx: SnsContext,
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
    const email = ctx.aws.sns?.email;
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
    const { rowCount } = await ctx.pool.query('SELECT 1 FROM rowcast.functions WHERE name = $1', [fn]);
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

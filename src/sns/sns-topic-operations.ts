import { TOPIC_NAME } from '../config/topic-schema.js';
import { snsTopicArn } from '../model/arn.js';
import { invalidParameter, type QueryParams, toXml, xmlEntries } from './query-protocol.js';
import { checkTopicAttributes } from './sns-attributes.js';
import {
  assertApiMade,
  decodeToken,
  encodeToken,
  findTopic,
  type Operation,
  type SnsContext,
  type TopicRow,
  topicParam,
} from './sns-lookups.js';

/** CreateTopic, DeleteTopic, ListTopics, Get/SetTopicAttributes: rows of rowcast.topics (owner 'api' when made here). */
export function topicOperations(ctx: SnsContext): Record<string, Operation> {
  return {
    CreateTopic: (p) => createTopic(ctx, p),
    DeleteTopic: (p) => deleteTopic(ctx, p),
    ListTopics: (p) => listTopics(ctx, p),
    GetTopicAttributes: (p) => getTopicAttributes(ctx, p),
    SetTopicAttributes: (p) => setTopicAttributes(ctx, p),
  };
}

async function createTopic(ctx: SnsContext, p: QueryParams): Promise<string> {
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
  const { rows } = await ctx.pool.query<TopicRow>(
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
  return toXml({ TopicArn: snsTopicArn(ctx.aws, name) });
}

async function deleteTopic(ctx: SnsContext, p: QueryParams): Promise<null> {
  const name = topicParam(p, 'TopicArn');
  const topic = await findTopic(ctx.pool, name, false);
  // Deleting a topic that does not exist succeeds, as in SNS.
  if (!topic) return null;
  assertApiMade(topic.owner, `topic ${name}`);
  await ctx.pool.query(
    `WITH gone AS (DELETE FROM rowcast.topics WHERE name = $1 AND owner = 'api' RETURNING 1) SELECT pg_notify('rowcast_config', '') FROM gone`,
    [name],
  );
  return null;
}

async function listTopics(ctx: SnsContext, p: QueryParams): Promise<string> {
  const after = decodeToken(p.get('NextToken'));
  const { rows } = await ctx.pool.query<{ name: string }>(
    'SELECT name FROM rowcast.topics WHERE name > $1 ORDER BY name LIMIT $2',
    [after, ctx.pageSize + 1],
  );
  const page = rows.slice(0, ctx.pageSize);
  return toXml({
    Topics: page.map((r) => ({ TopicArn: snsTopicArn(ctx.aws, r.name) })),
    NextToken: rows.length > ctx.pageSize ? encodeToken(page.at(-1)!.name) : undefined,
  });
}

async function getTopicAttributes(ctx: SnsContext, p: QueryParams): Promise<string> {
  const name = topicParam(p, 'TopicArn');
  const topic = (await findTopic(ctx.pool, name, true))!;
  const { rows } = await ctx.pool.query<{ confirmed: number; pending: number; deleted: number }>(
    `SELECT count(*) FILTER (WHERE sns_state = 'confirmed')::int AS confirmed, count(*) FILTER (WHERE sns_state = 'pending_confirmation')::int AS pending,
            count(*) FILTER (WHERE sns_state = 'unsubscribed')::int AS deleted
       FROM rowcast.subscriptions WHERE topic = $1`,
    [name],
  );
  const arn = snsTopicArn(ctx.aws, name);
  const attributes: Record<string, string> = {
    TopicArn: arn,
    Owner: ctx.aws.accountId,
    DisplayName: '',
    SignatureVersion: '1',
    Policy: defaultPolicy(arn, ctx.aws.accountId),
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

async function setTopicAttributes(ctx: SnsContext, p: QueryParams): Promise<null> {
  const name = topicParam(p, 'TopicArn');
  const attribute = p.required('AttributeName');
  const value = p.get('AttributeValue') ?? '';
  const topic = (await findTopic(ctx.pool, name, true))!;
  if (attribute === 'FifoTopic')
    throw invalidParameter('Invalid parameter: AttributeName: FifoTopic cannot be changed after the topic is created.');
  checkTopicAttributes({ [attribute]: value }, topic.fifo);
  // Topic attributes the config does not declare (DisplayName, Policy, …) may change on config topics too. Running
  // processes hear of it (NOTIFY rowcast_config): a function's SDK endpoint keeps the topics it published to.
  await ctx.pool.query(
    `WITH t AS (UPDATE rowcast.topics SET sns_attributes = sns_attributes || jsonb_build_object($2::text, $3::text), updated_at = now() WHERE name = $1 RETURNING 1)
     SELECT pg_notify('rowcast_config', '') FROM t`,
    [name, attribute, value],
  );
  return null;
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

import { createHash } from 'node:crypto';
import type { DeliveryPolicy } from '../config/subscription-schema.js';
import { type FilterPolicyScope, validateFilterPolicy } from '../model/filter-policy/filter-policy.js';
import { invalidParameter, type MessageAttribute } from './query-protocol.js';

/**
 * SNS's attributes and message parameters, checked and translated into rowcast's terms. Pure: what is valid, and
 * what it becomes (a filter policy, a format, a delivery policy, attributes of a message).
 */

/** Topic attributes the API accepts; the ones rowcast acts on are FifoTopic and ContentBasedDeduplication. */
export const TOPIC_ATTRIBUTES = [
  'DisplayName',
  'Policy',
  'DeliveryPolicy',
  'FifoTopic',
  'ContentBasedDeduplication',
  'SignatureVersion',
  'KmsMasterKeyId',
  'TracingConfig',
  'ArchivePolicy',
  'FifoThroughputScope',
] as const;
/** Subscription attributes the API accepts (DeliveryPolicy: healthyRetryPolicy's numRetries and delays are used). */
export const SUBSCRIPTION_ATTRIBUTES = [
  'FilterPolicy',
  'FilterPolicyScope',
  'RawMessageDelivery',
  'RedrivePolicy',
  'DeliveryPolicy',
] as const;

const bool = (name: string, value: string): boolean => {
  if (value !== 'true' && value !== 'false')
    throw invalidParameter(
      `Invalid parameter: Attributes Reason: ${name}: Invalid value [${value}]. Must be true or false.`,
    );
  return value === 'true';
};

/** Checks topic attributes (CreateTopic, SetTopicAttributes); returns them as stored in sns_attributes. */
export function checkTopicAttributes(attributes: Record<string, string>, fifo: boolean): Record<string, string> {
  for (const [name, value] of Object.entries(attributes)) {
    if (!(TOPIC_ATTRIBUTES as readonly string[]).includes(name)) {
      throw invalidParameter(
        `Invalid parameter: AttributeName: ${name} is not a topic attribute rowcast knows (${TOPIC_ATTRIBUTES.join(', ')}).`,
      );
    }
    if (name === 'FifoTopic' || name === 'ContentBasedDeduplication') bool(name, value);
    if (name === 'SignatureVersion' && value !== '1' && value !== '2')
      throw invalidParameter('Invalid parameter: SignatureVersion must be "1" (SHA1withRSA) or "2" (SHA256withRSA).');
    if (name === 'ContentBasedDeduplication' && value === 'true' && !fifo)
      throw invalidParameter(
        'Invalid parameter: ContentBasedDeduplication applies to FIFO topics only (FifoTopic=true, a name ending in .fifo).',
      );
    if ((name === 'Policy' || name === 'DeliveryPolicy') && value !== '') parseJson(name, value);
  }
  return attributes;
}

/** What a subscription's SNS attributes make of it in rowcast. */
export interface SubscriptionEffect {
  filterPolicy?: object | null;
  filterPolicyScope?: FilterPolicyScope;
  raw?: boolean;
  /** A topic's name (rowcast's dead letters go to a topic), or null to remove it. */
  deadLetterTopic?: string | null;
  deliveryPolicy?: Partial<DeliveryPolicy>;
}

/**
 * Checks one subscription attribute and says what it changes. `topicOf` reads an SNS topic ARN; the existence of
 * the dead-letter topic is the caller's to check.
 */
export function subscriptionAttribute(
  name: string,
  value: string,
  scope: FilterPolicyScope,
  topicOf: (arn: string) => string | null,
): SubscriptionEffect {
  switch (name) {
    case 'FilterPolicy': {
      if (value.trim() === '') return { filterPolicy: null };
      const policy = parseJson(name, value);
      const problems = validateFilterPolicy(policy, scope);
      if (problems.length) throw invalidParameter(`Invalid parameter: FilterPolicy: ${problems.join('; ')}`);
      return { filterPolicy: policy as object };
    }
    case 'FilterPolicyScope':
      if (value !== 'MessageAttributes' && value !== 'MessageBody')
        throw invalidParameter('Invalid parameter: FilterPolicyScope must be MessageAttributes or MessageBody.');
      return { filterPolicyScope: value };
    case 'RawMessageDelivery':
      return { raw: bool(name, value) };
    case 'RedrivePolicy': {
      if (value.trim() === '') return { deadLetterTopic: null };
      const policy = parseJson(name, value) as { deadLetterTargetArn?: unknown };
      const arn = typeof policy?.deadLetterTargetArn === 'string' ? policy.deadLetterTargetArn : '';
      const topic = topicOf(arn);
      if (!topic) {
        throw invalidParameter(
          `Invalid parameter: RedrivePolicy: deadLetterTargetArn must be the ARN of an SNS topic (rowcast's dead letters go to a topic, not to an SQS queue); got ${JSON.stringify(arn)}.`,
        );
      }
      return { deadLetterTopic: topic };
    }
    case 'DeliveryPolicy':
      return { deliveryPolicy: value.trim() === '' ? {} : deliveryPolicyOf(parseJson(name, value)) };
    default:
      throw invalidParameter(
        `Invalid parameter: AttributeName: ${name} is not a subscription attribute rowcast knows (${SUBSCRIPTION_ATTRIBUTES.join(', ')}).`,
      );
  }
}

/** SNS's HTTP delivery policy (healthyRetryPolicy: numRetries, minDelayTarget, maxDelayTarget in seconds) as rowcast's. */
function deliveryPolicyOf(policy: unknown): Partial<DeliveryPolicy> {
  const retry = (policy as { healthyRetryPolicy?: Record<string, unknown> } | null)?.healthyRetryPolicy;
  if (!retry) return {};
  const num = (key: string, min: number, max: number): number | undefined => {
    const v = retry[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw invalidParameter(
        `Invalid parameter: DeliveryPolicy: healthyRetryPolicy.${key} must be an integer from ${min} to ${max}.`,
      );
    return v;
  };
  const retries = num('numRetries', 0, 99);
  const minDelay = num('minDelayTarget', 1, 3600);
  const maxDelay = num('maxDelayTarget', 1, 3600);
  return {
    ...(retries !== undefined && { maxAttempts: retries + 1 }),
    ...(minDelay !== undefined && { minDelay: minDelay * 1000 }),
    ...(maxDelay !== undefined && { maxDelay: maxDelay * 1000 }),
  };
}

function parseJson(name: string, value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw invalidParameter(`Invalid parameter: ${name}: failed to parse JSON (${(err as Error).message}).`);
  }
}

const ATTRIBUTE_NAME = /^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}$/;
const DATA_TYPE = /^(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,256})?$|^String\.Array$/;
const MAX_ATTRIBUTES = 10;

/** Message attributes as rowcast stores them (values; String.Array as a list) and their SNS data types. */
export interface MessageAttributes {
  values: Record<string, string | string[]>;
  types: Record<string, string>;
}

/** Checks MessageAttributes as SNS does and converts them. */
export function messageAttributes(list: MessageAttribute[]): MessageAttributes {
  if (list.length > MAX_ATTRIBUTES)
    throw invalidParameter(
      `Invalid parameter: MessageAttributes: at most ${MAX_ATTRIBUTES} attributes per message (got ${list.length}).`,
    );
  const values: Record<string, string | string[]> = {};
  const types: Record<string, string> = {};
  for (const a of list) {
    const where = `Invalid parameter: MessageAttributes: attribute "${a.name}"`;
    if (!ATTRIBUTE_NAME.test(a.name) || /^(AWS|Amazon)\./i.test(a.name)) {
      throw invalidParameter(
        `${where}: names are 1–256 letters, digits, "_", "-" and "." (no leading, trailing or double dots, no AWS./Amazon. prefix).`,
      );
    }
    if (!a.dataType || !DATA_TYPE.test(a.dataType))
      throw invalidParameter(
        `${where}: DataType must be String, Number, Binary or String.Array (String, Number and Binary may have a ".custom" suffix).`,
      );
    const base = a.dataType.split('.')[0]!;
    if (base === 'Binary') {
      if (!a.binaryValue) throw invalidParameter(`${where}: a Binary attribute needs a BinaryValue.`);
      values[a.name] = a.binaryValue;
    } else {
      if (a.stringValue === undefined || a.stringValue === '')
        throw invalidParameter(`${where}: a ${a.dataType} attribute needs a non-empty StringValue.`);
      if (a.dataType === 'String.Array') values[a.name] = stringArray(where, a.stringValue);
      else if (base === 'Number') {
        if (!/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(a.stringValue.trim()))
          throw invalidParameter(
            `${where}: the value of a Number attribute must be a number, not ${JSON.stringify(a.stringValue)}.`,
          );
        values[a.name] = a.stringValue;
      } else values[a.name] = a.stringValue;
    }
    types[a.name] = a.dataType;
  }
  return { values, types };
}

/** String.Array: a JSON array of strings, numbers, booleans or null (kept as strings, which filter policies match). */
function stringArray(where: string, value: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.some((v) => v !== null && typeof v === 'object')) {
    throw invalidParameter(
      `${where}: a String.Array value must be a JSON array of strings, numbers, booleans or null, e.g. ["a","b"].`,
    );
  }
  return parsed.map((v) => String(v));
}

/** MessageStructure 'json': { "default": "…", "http": "…", … }; returns the default message and the others. */
export function messageStructure(
  structure: string | undefined,
  message: string,
): { body: string; protocolBodies: Record<string, string> | null } {
  if (structure === undefined || structure === '') return { body: message, protocolBodies: null };
  if (structure !== 'json')
    throw invalidParameter(
      `Invalid parameter: MessageStructure: the only value is "json" (got ${JSON.stringify(structure)}).`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    throw invalidParameter('Invalid parameter: Message Structure - JSON message body failed to parse');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw invalidParameter('Invalid parameter: Message Structure - JSON message body failed to parse');
  const entries = Object.entries(parsed as Record<string, unknown>);
  if (entries.some(([, v]) => typeof v !== 'string'))
    throw invalidParameter("Invalid parameter: Message Structure - every protocol's message must be a string");
  const map = Object.fromEntries(entries) as Record<string, string>;
  if (map.default === undefined)
    throw invalidParameter('Invalid parameter: Message Structure - No default entry in JSON message body');
  const { default: body, ...others } = map;
  // SNS calls Lambda subscriptions "lambda"; rowcast calls them "function".
  if (others.lambda !== undefined && others.function === undefined) others.function = others.lambda;
  return { body, protocolBodies: Object.keys(others).length ? others : null };
}

/** Subject: SNS allows up to 100 printable ASCII characters on one line. */
export function checkSubject(subject: string | undefined): string | null {
  if (subject === undefined) return null;
  if (subject === '' || subject.length > 100 || !/^[\x20-\x7e]+$/.test(subject)) {
    throw invalidParameter('Invalid parameter: Subject: 1–100 printable ASCII characters, no line breaks.');
  }
  return subject;
}

/** FIFO content-based deduplication: the SHA-256 of the message (SNS's rule). */
export const contentDedupKey = (message: string): string => createHash('sha256').update(message).digest('hex');

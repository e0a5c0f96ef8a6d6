import { randomUUID } from 'node:crypto';
import type { NewMessage } from '../routing/fan-out.js';
import { topicOfArn } from '../model/arn.js';
import { invalidParameter, type QueryParams, SnsError } from './query-protocol.js';
import { checkSubject, contentDedupKey, messageAttributes, messageStructure } from './sns-attributes.js';

/**
 * Publish and PublishBatch parameters read as SNS reads them, into rowcast's messages: shared by the public SNS API
 * (which writes them at once) and the endpoint a function's AWS SDK publishes to (which writes them with the
 * invocation's successful attempt), so both accept and refuse exactly the same requests. Pure: no I/O.
 */

/** What a Publish needs to know of its topic. */
export interface PublishTopic {
  name: string;
  fifo: boolean;
  max_message_size: number;
  large_messages: string;
  sns_attributes: Record<string, string>;
}

export const MAX_BATCH = 10;
export const MAX_BATCH_BYTES = 256 * 1024;

/** Publish's target: TopicArn or TargetArn (a topic's; platform endpoints and phone numbers are not supported). */
export function publishTarget(p: QueryParams): string {
  if (p.get('PhoneNumber'))
    throw invalidParameter('Invalid parameter: PhoneNumber: rowcast does not send SMS; publish to a topic.');
  const arn = p.get('TopicArn') || p.get('TargetArn');
  if (!arn) throw invalidParameter('Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter');
  const name = topicOfArn(arn);
  if (!name)
    throw invalidParameter(
      `Invalid parameter: ${p.get('TopicArn') ? 'TopicArn' : 'TargetArn'}: ${JSON.stringify(arn)} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>); platform endpoints are not supported.`,
    );
  return name;
}

/** PublishBatch's topic: TopicArn. */
export function batchTarget(p: QueryParams): string {
  const arn = p.required('TopicArn');
  const name = topicOfArn(arn);
  if (!name)
    throw invalidParameter(
      `Invalid parameter: TopicArn: ${JSON.stringify(arn)} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>).`,
    );
  return name;
}

/** PublishBatch's entries (their parameter prefixes and ids), with SNS's batch errors for the request as a whole. */
export function batchEntries(p: QueryParams): { prefix: string; id: string }[] {
  const entries = p.memberPrefixes('PublishBatchRequestEntries');
  if (!entries.length) throw new SnsError('EmptyBatchRequest', "The batch request doesn't contain any entries.", 400);
  if (entries.length > MAX_BATCH)
    throw new SnsError(
      'TooManyEntriesInBatchRequest',
      `The batch request contains more entries than permissible (at most ${MAX_BATCH}).`,
      400,
    );
  const ids = entries.map((e) => p.get(`${e}.Id`) ?? '');
  for (const id of ids) {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(id))
      throw new SnsError(
        'InvalidBatchEntryId',
        `The Id of a batch entry in a batch request doesn't abide by the specification (1–80 letters, digits, "-" or "_"): ${JSON.stringify(id)}.`,
        400,
      );
  }
  if (new Set(ids).size !== ids.length)
    throw new SnsError('BatchEntryIdsNotDistinct', 'Two or more batch entries in the request have the same Id.', 400);
  const bytes = entries.reduce((n, e) => n + Buffer.byteLength(p.get(`${e}.Message`) ?? ''), 0);
  if (bytes > MAX_BATCH_BYTES)
    throw new SnsError(
      'BatchRequestTooLong',
      `The length of all the messages put together is more than the limit (${MAX_BATCH_BYTES} bytes).`,
      400,
    );
  return entries.map((prefix, i) => ({ prefix, id: ids[i]! }));
}

/** A type, not an interface: the XML renderer takes it as a plain record. */
export type BatchFailure = { Id: string; Code: string; Message: string; SenderFault: boolean };

/** A PublishBatch's messages: each entry becomes a message, or a Failed entry with SNS's error for it. */
export function batchMessages(
  p: QueryParams,
  entries: { prefix: string; id: string }[],
  topic: PublishTopic,
): { ok: { id: string; message: NewMessage }[]; failed: BatchFailure[] } {
  const ok: { id: string; message: NewMessage }[] = [];
  const failed: BatchFailure[] = [];
  for (const { prefix, id } of entries) {
    try {
      ok.push({ id, message: newMessage(p, `${prefix}.`, topic) });
    } catch (err) {
      if (!(err instanceof SnsError)) throw err;
      failed.push({ Id: id, Code: err.code, Message: err.message, SenderFault: err.type === 'Sender' });
    }
  }
  return { ok, failed };
}

/** One message of a Publish (prefix '') or of a PublishBatch entry (prefix 'PublishBatchRequestEntries.member.N.'). */
export function newMessage(p: QueryParams, prefix: string, topic: PublishTopic): NewMessage {
  const raw = p.get(`${prefix}Message`);
  if (raw === undefined || raw === '') throw invalidParameter('Invalid parameter: Empty message');
  const subject = checkSubject(p.get(`${prefix}Subject`));
  const { body, protocolBodies } = messageStructure(p.get(`${prefix}MessageStructure`), raw);
  const attributes = messageAttributes(p.messageAttributes(`${prefix}MessageAttributes`));
  const groupId = p.get(`${prefix}MessageGroupId`) || null;
  let dedupKey = p.get(`${prefix}MessageDeduplicationId`) || null;
  if (topic.fifo) {
    if (!groupId) throw invalidParameter('Invalid parameter: The MessageGroupId parameter is required for FIFO topics');
    if (!dedupKey) {
      if (topic.sns_attributes.ContentBasedDeduplication !== 'true') {
        throw invalidParameter(
          'Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly',
        );
      }
      dedupKey = contentDedupKey(body);
    }
  } else if (dedupKey) {
    throw invalidParameter(
      'Invalid parameter: MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type',
    );
  }
  const size =
    Buffer.byteLength(raw) +
    Object.entries(attributes.values).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(String(v)), 0);
  if (size > topic.max_message_size && topic.large_messages === 'reject') {
    throw invalidParameter(
      `Invalid parameter: Message too long: ${size} bytes with its attributes, over topic ${topic.name}'s limit of ${topic.max_message_size} bytes.`,
    );
  }
  return {
    id: randomUUID(),
    topic: topic.name,
    subject,
    body,
    contentType: isJsonDocument(body) ? 'application/json' : 'text/plain',
    // String.Array values are lists, which filter policies match element by element (see filter-policy.ts).
    attributes: attributes.values as Record<string, string>,
    attributeTypes: Object.keys(attributes.types).length ? attributes.types : null,
    protocolBodies,
    groupKey: groupId,
    dedupKey,
  };
}

/** A JSON object or array: stored as JSON, so filter policies with scope MessageBody can read it. */
function isJsonDocument(body: string): boolean {
  if (!/^\s*[[{]/.test(body)) return false;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

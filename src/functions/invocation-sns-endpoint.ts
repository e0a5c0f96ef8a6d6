import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorXml, notFound, QueryParams, resultXml, SnsError, toXml } from '../sns/query-protocol.js';
import { SnsOperations } from '../sns/sns-operations.js';
import {
  batchEntries,
  batchMessages,
  batchTarget,
  newMessage,
  type PublishTopic,
  publishTarget,
} from '../sns/sns-publish-message.js';
import type { AwsConfig } from '../config/aws-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import type { NewMessage } from '../routing/fan-out.js';
import type { PublishedMessage } from '../model/thread-protocol.js';
import { PublishedIds } from '../model/published-ids.js';

/**
 * The SNS endpoint a function's AWS SDK publishes to. Each handler thread or runtime process gets its own URL,
 * `http://127.0.0.1:<port>/_invocation/<token>/` (AWS_ENDPOINT_URL_SNS, and the default endpoint of boto3's SNS
 * clients in rowcast's Python bootstrap); the token maps to the invocation that thread or process is running now.
 * A Publish or PublishBatch there is read exactly as the SNS API reads it and kept with that invocation: its
 * messages are written in the transaction that records a successful attempt, as those of context.publish, so a
 * failed, timed-out or retried attempt publishes nothing. Other actions (CreateTopic, Subscribe, …) are the SNS
 * API's own. The token, unguessable and known only to the thread's or process's environment, authenticates the
 * request (the SDK's signature is not checked), as Lambda's Runtime API needs nothing more on loopback.
 */

/** A handler thread's or runtime process's endpoint. */
export interface InvocationSlot {
  /** The SDK's SNS endpoint for this thread or process. */
  readonly url: string;
  /** The thread or process starts running an invocation: publishes from now on belong to it. */
  begin(invocationId: string): void;
  /** The attempt ended: the messages it published through the SDK (written only if it succeeded). */
  end(): PublishedMessage[];
  /** The thread or process is gone: its URL answers no more. */
  close(): void;
}

interface SlotState {
  current: { id: string; published: PublishedMessage[]; ids: PublishedIds } | null;
  /** Brings `current` up to date with what the thread has done (its posted results) before a publish is attributed. */
  catchUp?: () => void;
}

/** Largest request body: a PublishBatch of 256 KiB, form-encoded (as the SNS API). */
const BODY_LIMIT = 2 * 1024 * 1024;
const PATH = /^\/_invocation\/([0-9a-f]{64})\/?$/;

export class InvocationSnsEndpoint {
  private readonly server: Server;
  private readonly slots = new Map<string, SlotState>();
  private readonly sns: SnsOperations;
  /**
   * Topics publishes went to, read once and kept until forgetTopics() (the function worker calls it on NOTIFY
   * rowcast_config, which every change to a topic sends): a publish costs no query of its own.
   */
  private readonly topics = new Map<string, PublishTopic>();
  /** Counts forgetTopics() calls: a read that began before one is not kept. */
  private topicsGeneration = 0;
  private base = '';

  constructor(
    private readonly pool: Pool,
    private readonly aws: AwsConfig,
    private readonly log: Logger,
  ) {
    this.sns = new SnsOperations({ pool, aws, pageSize: 100 });
    this.server = createServer((req, res) => void this.handle(req, res));
    // The SDKs keep connections alive between invocations.
    this.server.keepAliveTimeout = 60_000;
  }

  async listen(): Promise<void> {
    if (this.base) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server.unref();
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  slot(catchUp?: () => void): InvocationSlot {
    if (!this.base) throw new Error('the invocation SNS endpoint is not listening yet (call listen() first)');
    const token = randomBytes(32).toString('hex');
    const state: SlotState = { current: null, catchUp };
    this.slots.set(token, state);
    return {
      url: `${this.base}/_invocation/${token}/`,
      begin: (id) => {
        state.current = { id, published: [], ids: new PublishedIds(id, 'sdk') };
      },
      end: () => {
        const published = state.current?.published ?? [];
        state.current = null;
        return published;
      },
      close: () => {
        state.current = null;
        this.slots.delete(token);
      },
    };
  }

  /**
   * What the SDKs read to reach this endpoint: AWS_ENDPOINT_URL_SNS and the region, and placeholder credentials when
   * the handler has no source of credentials (the SDKs sign every request, and would otherwise end their search at
   * the EC2 metadata service, slowly, and fail). Credentials the handler has stay: its calls to other services use them.
   */
  environment(slot: InvocationSlot, inherited: Record<string, string | undefined>): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_SNS: slot.url,
      AWS_REGION: this.aws.region,
      AWS_DEFAULT_REGION: this.aws.region,
      ...(hasCredentialSource(inherited)
        ? {}
        : {
            AWS_ACCESS_KEY_ID: 'ROWCASTFUNCTIONSDK',
            AWS_SECRET_ACCESS_KEY: 'not-checked-the-endpoint-url-is-the-credential',
          }),
    };
  }

  /** Topics may have changed: the next publish to each reads it again. */
  forgetTopics(): void {
    this.topics.clear();
    this.topicsGeneration++;
  }

  async close(): Promise<void> {
    this.slots.clear();
    if (!this.base) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const answer = (status: number, xml: string): void =>
      // With its Content-Length, as SNS answers: one write, not a chunked response.
      void res
        .writeHead(status, {
          'content-type': 'text/xml',
          'x-amzn-requestid': requestId,
          'content-length': String(Buffer.byteLength(xml)),
        })
        .end(xml);
    let action: string | undefined;
    try {
      const token = PATH.exec((req.url ?? '').split('?')[0]!)?.[1];
      const state = token === undefined ? undefined : this.slots.get(token);
      if (!state) {
        req.resume();
        throw new SnsError(
          'InvalidClientTokenId',
          'This endpoint belongs to no running handler thread or runtime process of rowcast (it ends with its thread or process).',
          403,
        );
      }
      if (req.method !== 'POST') {
        req.resume();
        throw new SnsError(
          'InvalidAction',
          'The SNS API takes POST requests (awsQuery: Action=…&Version=2010-03-31).',
          400,
        );
      }
      const body = await readBody(req);
      const params = new QueryParams(body);
      action = params.get('Action');
      if (!action)
        throw new SnsError(
          'MissingAction',
          'The request must contain the parameter Action (an SNS request is a form POST with Action=…&Version=2010-03-31).',
          400,
        );
      let result: string | null;
      if (action === 'Publish' || action === 'PublishBatch') {
        state.catchUp?.();
        const invocation = state.current;
        if (!invocation) {
          throw new SnsError(
            'AuthorizationError',
            'No invocation is running in this handler: publish from inside the handler, and wait for the publish to finish before returning (publishes join the invocation and are written with its success).',
            403,
          );
        }
        /** Joins the messages to the invocation, under ids derived from it (model/published-ids.ts); returns the ids. */
        const keep = (messages: NewMessage[]): string[] => {
          // The handler returned (or timed out) while this request was read: it belongs to no attempt.
          state.catchUp?.();
          if (state.current !== invocation)
            throw new SnsError(
              'AuthorizationError',
              'The invocation this publish belonged to has ended: wait for a publish to finish before the handler returns.',
              403,
            );
          const published = messages.map((m) => {
            const p = toPublished(m);
            return { ...p, id: invocation.ids.next(p) };
          });
          invocation.published.push(...published);
          return published.map((p) => p.id);
        };
        if (action === 'Publish') {
          const topic = await this.topic(publishTarget(params));
          const [id] = keep([newMessage(params, '', topic)]);
          result = toXml({ MessageId: id });
        } else {
          const name = batchTarget(params);
          const entries = batchEntries(params);
          const { ok, failed } = batchMessages(params, entries, await this.topic(name));
          const ids = keep(ok.map((o) => o.message));
          result = toXml({ Successful: ok.map((o, i) => ({ Id: o.id, MessageId: ids[i] })), Failed: failed });
        }
      } else {
        const operation = this.sns.operations[action];
        if (!operation)
          throw new SnsError(
            'InvalidAction',
            `The action ${action} is not valid for this endpoint: rowcast serves ${Object.keys(this.sns.operations).join(', ')} (docs/sns.md).`,
            400,
          );
        result = await operation(params);
        // CreateTopic, DeleteTopic, SetTopicAttributes…: this process need not wait for their NOTIFY.
        this.forgetTopics();
      }
      answer(200, resultXml(action, result, requestId));
    } catch (err) {
      if (err instanceof SnsError) {
        answer(err.status, errorXml(err, requestId));
        return;
      }
      this.log.error({ action, err: (err as Error).message }, 'sns request from a function failed');
      answer(
        500,
        errorXml(new SnsError('InternalError', 'The request failed inside rowcast; see its log.', 500), requestId),
      );
    }
  }

  private async topic(name: string): Promise<PublishTopic> {
    const known = this.topics.get(name);
    if (known) return known;
    const generation = this.topicsGeneration;
    const { rows } = await this.pool.query<PublishTopic>(
      'SELECT name, fifo, max_message_size, large_messages, sns_attributes FROM rowcast.topics WHERE name = $1',
      [name],
    );
    // A topic that does not exist (yet) is not kept.
    if (!rows[0]) throw notFound('Topic does not exist');
    if (generation === this.topicsGeneration) this.topics.set(name, rows[0]);
    return rows[0];
  }
}

/** Whether the SDKs would find credentials in this environment: variables, a profile, or the shared files. */
function hasCredentialSource(env: Record<string, string | undefined>): boolean {
  const variables = [
    'AWS_ACCESS_KEY_ID',
    'AWS_PROFILE',
    'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
    'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  ];
  if (variables.some((name) => env[name])) return true;
  const home = env.HOME ?? homedir();
  return (
    existsSync(env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(home, '.aws', 'credentials')) ||
    existsSync(env.AWS_CONFIG_FILE ?? path.join(home, '.aws', 'config'))
  );
}

function toPublished(m: NewMessage): PublishedMessage {
  return {
    id: m.id,
    topic: m.topic,
    body: m.body,
    contentType: m.contentType,
    subject: m.subject,
    attributes: m.attributes,
    groupKey: m.groupKey,
    dedupKey: m.dedupKey ?? null,
    protocolBodies: m.protocolBodies ?? null,
    attributeTypes: m.attributeTypes ?? null,
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) chunks.push(chunk);
    });
    req.on('end', () =>
      size > BODY_LIMIT
        ? reject(new SnsError('InvalidParameter', `Invalid parameter: the request is over ${BODY_LIMIT} bytes.`, 400))
        : resolve(Buffer.concat(chunks).toString('utf8')),
    );
    req.on('error', reject);
  });
}

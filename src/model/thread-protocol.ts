/** Messages between the dispatcher and a handler thread. */

export interface InvokeRequest {
  id: string;
  event: unknown;
  attempt: number;
  /** Epoch milliseconds when the invocation times out. */
  deadline: number;
  clientContext: unknown;
  trace: string | null;
  /** Topics that exist and their size rules, so publish() can refuse an unknown topic or a too-large message at once. */
  topics: Record<string, TopicRules>;
}

export interface TopicRules {
  maxMessageSize: number;
  largeMessages: 'reject' | 'claim-check';
}

export interface PublishedMessage {
  id: string;
  topic: string;
  body: string;
  contentType: string;
  subject: string | null;
  attributes: Record<string, string>;
  groupKey: string | null;
  dedupKey: string | null;
  /** Published through the AWS SDK with MessageStructure 'json': the message per subscription protocol. */
  protocolBodies?: Record<string, string> | null;
  /** Published through the AWS SDK: the SNS data types of the attributes. */
  attributeTypes?: Record<string, string> | null;
}

export interface HandlerError {
  type: string;
  message: string;
  stack: string[];
}

/**
 * What the dispatcher sends a handler thread: an invocation, or the topics publish() checks against — sent before
 * an invocation only when they changed since the thread last got them, not cloned into every invocation.
 */
export type ToThreadMessage =
  ({ type: 'invoke' } & Omit<InvokeRequest, 'topics'>) | { type: 'topics'; topics: Record<string, TopicRules> };

export type ThreadMessage =
  /** The handler module has loaded (or failed to: the first invocation then reports why); the init phase is over. */
  | { type: 'init' }
  | { type: 'result'; id: string; ok: true; result: string | null; published: PublishedMessage[] }
  | { type: 'result'; id: string; ok: false; error: HandlerError }
  | { type: 'log'; id: string; level: 'debug' | 'info' | 'warn' | 'error'; message: string };

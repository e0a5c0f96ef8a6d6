/** Messages between the dispatcher and a handler thread. */

export interface InvokeRequest {
  id: string;
  /** The invocation's payload as stored (see model/invocation-payload.ts): the runner makes the event from it. */
  payload: string;
  attempt: number;
  /** Epoch milliseconds when the invocation times out. */
  deadline: number;
  clientContext: unknown;
  trace: string | null;
  /** Topics that exist and their size rules, so publish() can refuse an unknown topic or a too-large message at once. */
  topics: Record<string, TopicRules>;
  /** Epoch milliseconds after which a runner that queues invocations hands it back unstarted (its lease runs short). */
  startBy?: number;
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

/** One invocation of a batch: its deadline is set by the thread when it starts it (the batch's `timeout` later). */
export type BatchedInvocation = Omit<InvokeRequest, 'topics' | 'deadline'>;

/**
 * What the dispatcher sends a handler thread: invocations to run one after another (more than one only when
 * more were waiting than threads were free: one message and one wake-up for all), one to skip (it was aborted
 * before it started), or the topics publish() checks against — sent before a batch only when they changed since
 * the thread last got them, not cloned into every invocation.
 */
export type ToThreadMessage =
  | { type: 'invoke'; items: BatchedInvocation[]; timeout: number }
  | { type: 'skip'; id: string }
  | { type: 'topics'; topics: Record<string, TopicRules> };

export type ThreadMessage =
  /** The handler module has loaded (or failed to: the first invocation then reports why); the init phase is over. */
  | { type: 'init' }
  | { type: 'result'; id: string; ok: true; result: string | null; published: PublishedMessage[] }
  | { type: 'result'; id: string; ok: false; error: HandlerError }
  /** An invocation of a batch that the thread did not start (told to skip it, or past its startBy). */
  | { type: 'skipped'; id: string }
  | { type: 'log'; id: string; level: 'debug' | 'info' | 'warn' | 'error'; message: string };

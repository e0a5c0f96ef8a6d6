/**
 * Runs inside a worker thread: loads one function's handler module and runs one invocation at a time, in the
 * AWS Lambda Node.js shape `handler(event, context)`. Whatever the handler does — block, leak, crash — happens
 * here, not on the dispatcher's thread, which can terminate this thread at the deadline.
 */
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type {
  BatchedInvocation,
  PublishedMessage,
  ThreadMessage,
  ToThreadMessage,
  TopicRules,
} from '../model/thread-protocol.js';
import { eventOf } from '../model/invocation-payload.js';
import { PublishedIds } from '../model/published-ids.js';

const { modulePath, exportName, functionName, results } = workerData as {
  modulePath: string;
  exportName: string;
  functionName: string;
  /** Where results go: a port of their own, which the dispatcher can read synchronously (receiveMessageOnPort). */
  results: MessagePort;
};

type Handler = (event: unknown, context: Record<string, unknown>) => unknown;

async function loadHandler(): Promise<Handler> {
  const url = pathToFileURL(modulePath).href;
  const ext = extname(modulePath);
  // TypeScript handlers need no build step: tsx compiles them on load.
  const mod = (
    ext === '.ts' || ext === '.mts' || ext === '.cts'
      ? await (await import('tsx/esm/api')).tsImport(url, import.meta.url)
      : await import(url)
  ) as Record<string, unknown>;
  const handler = mod[exportName] ?? (mod.default as Record<string, unknown> | undefined)?.[exportName];
  if (typeof handler !== 'function') {
    throw new Error(
      `${modulePath} does not export a function "${exportName}" (exports: ${Object.keys(mod).join(', ') || 'none'}); write \`export const ${exportName} = async (event, context) => { … }\``,
    );
  }
  return handler as Handler;
}

const loading = loadHandler();
const post = (message: ThreadMessage) => results.postMessage(message);
// As in Lambda, loading the module (the init phase) does not count against an invocation's timeout.
void loading.then(
  () => post({ type: 'init' }),
  () => post({ type: 'init' }),
);

function topicName(topic: string): string {
  // An SNS topic ARN (arn:aws:sns:region:account:name) names the topic by its last part.
  return topic.startsWith('arn:') ? topic.slice(topic.lastIndexOf(':') + 1) : topic;
}

/** The topics publish() checks against, as the dispatcher last sent them. */
let topics: Record<string, TopicRules> = {};

async function run(req: BatchedInvocation & { deadline: number }): Promise<void> {
  const published: PublishedMessage[] = [];
  const ids = new PublishedIds(req.id, 'context');
  const controller = new AbortController();
  const abortTimer = setTimeout(() => controller.abort(new Error('timed out')), Math.max(0, req.deadline - Date.now()));
  const log =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: unknown, ...rest: unknown[]) =>
      post({
        type: 'log',
        id: req.id,
        level,
        message: [msg, ...rest].map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' '),
      });
  const context = {
    invocationId: req.id,
    awsRequestId: req.id,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    attempt: req.attempt,
    clientContext: req.clientContext,
    traceparent: req.trace,
    callbackWaitsForEmptyEventLoop: true,
    signal: controller.signal,
    getRemainingTimeInMillis: () => Math.max(0, req.deadline - Date.now()),
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    /** Publishes when, and only if, this invocation succeeds: in the same transaction that records its success. */
    publish(
      topic: string,
      message: unknown,
      options: { subject?: string; attributes?: Record<string, string>; groupKey?: string; dedupKey?: string } = {},
    ) {
      const name = topicName(String(topic));
      const rules = topics[name];
      if (!rules)
        throw new Error(`publish: no topic "${name}"; known topics: ${Object.keys(topics).join(', ') || 'none'}`);
      const isText = typeof message === 'string';
      const body = isText ? message : JSON.stringify(message);
      if (body === undefined) throw new Error('publish: the message must be a string or JSON-serialisable');
      const size = Buffer.byteLength(body);
      if (size > rules.maxMessageSize && rules.largeMessages === 'reject') {
        throw new Error(
          `publish: the message is ${size} bytes, over topic "${name}"'s maxMessageSize (${rules.maxMessageSize} bytes); publish a smaller message (e.g. ids and keys), raise maxMessageSize, or set largeMessages: 'claim-check'`,
        );
      }
      const m = {
        topic: name,
        body,
        contentType: isText ? 'text/plain' : 'application/json',
        subject: options.subject ?? null,
        attributes: options.attributes ?? {},
        groupKey: options.groupKey ?? null,
        dedupKey: options.dedupKey ?? null,
      };
      const id = ids.next(m);
      published.push({ id, ...m });
      return Promise.resolve({ messageId: id, MessageId: id });
    },
  };
  try {
    const handler = await loading;
    // Parsed here, not on the dispatcher's thread: it sends the payload's text, which costs less to pass than an object.
    const event = eventOf(req.payload);
    // Lambda's callback style is supported too: handler(event, context, callback).
    const result =
      handler.length >= 3
        ? await new Promise<unknown>((resolve, reject) => {
            const returned = (
              handler as (e: unknown, c: unknown, cb: (err: unknown, res?: unknown) => void) => unknown
            )(event, context, (err, res) => (err ? reject(err) : resolve(res)));
            if (returned && typeof (returned as Promise<unknown>).then === 'function')
              (returned as Promise<unknown>).then(resolve, reject);
          })
        : await handler(event, context);
    let text: string | null = null;
    try {
      text = result === undefined ? null : (JSON.stringify(result) ?? null);
    } catch {
      text = null;
    }
    post({ type: 'result', id: req.id, ok: true, result: text, published });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    post({
      type: 'result',
      id: req.id,
      ok: false,
      error: {
        type: e.name,
        message: e.message,
        stack:
          e.stack
            ?.split('\n')
            .slice(1, 6)
            .map((l) => l.trim()) ?? [],
      },
    });
  } finally {
    clearTimeout(abortTimer);
  }
}

/** Invocations of a batch told to be skipped before the thread reached them. */
const skipped = new Set<string>();
/** Batches run one after another, and so do the invocations in each: one at a time, as a Lambda instance. */
let running = Promise.resolve();

async function runBatch(batch: Extract<ToThreadMessage, { type: 'invoke' }>): Promise<void> {
  for (const item of batch.items) {
    if (skipped.delete(item.id) || (item.startBy !== undefined && Date.now() > item.startBy)) {
      post({ type: 'skipped', id: item.id });
      continue;
    }
    // The timeout counts from the invocation's own start, not from the batch's arrival.
    await run({ ...item, deadline: Date.now() + batch.timeout });
  }
}

parentPort!.on('message', (m: ToThreadMessage) => {
  if (m.type === 'topics') topics = m.topics;
  else if (m.type === 'skip') skipped.add(m.id);
  else running = running.then(() => runBatch(m));
});

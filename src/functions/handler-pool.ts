import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.js';
import type { InvocationOutcome, InvocationRunner } from './invocation-runner.js';
import type { InvocationSlot, InvocationSnsEndpoint } from './invocation-sns-endpoint.js';
import type { InvokeRequest, ThreadMessage, ToThreadMessage } from '../model/thread-protocol.js';

export interface HandlerPoolOptions {
  functionName: string;
  modulePath: string;
  exportName: string;
  timeout: number;
  environment: Record<string, string>;
  memoryLimitMb: number;
  /** Where the AWS SDK's SNS client of each thread publishes (AWS_ENDPOINT_URL_SNS), joining the thread's invocation. */
  endpoint?: InvocationSnsEndpoint;
}

const OWN_EXT = extname(fileURLToPath(import.meta.url));
const THREAD_URL = new URL(`./handler-thread${OWN_EXT}`, import.meta.url);
/**
 * Run from TypeScript sources (development, tests), the thread's own module needs tsx's loader, and a worker
 * does not inherit the parent's loader hooks on Node 20: a small bootstrap registers tsx in the thread first.
 */
const THREAD_ENTRY: { code: string | URL; eval: boolean } =
  OWN_EXT === '.ts'
    ? {
        code: `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(THREAD_URL.href)}); })`,
        eval: true,
      }
    : { code: THREAD_URL, eval: false };
/** After the deadline the handler gets this long to notice its aborted signal before its thread is terminated. */
const TERMINATE_GRACE_MS = 100;
/** A new thread's init phase (start, loader, module import) may take this long; Lambda's limit is 10 s too. */
const INIT_TIMEOUT_MS = 10_000;
/** Most invocations handed to a thread in one message. */
const MAX_BATCH = 8;

type Request = Omit<InvokeRequest, 'deadline'>;

/** An invocation given to the pool: waiting for a thread, or one of a thread's batch. */
interface Call {
  request: Request;
  signal: AbortSignal;
  resolve: (outcome: InvocationOutcome) => void;
  onAbort: () => void;
  /** The thread it was handed to. */
  thread: Thread | null;
  /** When it started, as this thread sees it: its batch was sent (the first), or the one before it ended. */
  startedAt: number;
}

interface Thread {
  worker: Worker;
  results: MessagePort;
  slot: InvocationSlot | undefined;
  /** The handler module has loaded: only then does it take calls, and their timeouts count from then. */
  ready: boolean;
  /** Its batch, in order: the first is running (once ready), the others wait in the thread. */
  calls: Call[];
  timer: NodeJS.Timeout | undefined;
  spawnedAt: number;
  /** Being given up (lose() reads what it posted first). */
  dying: boolean;
  gone: boolean;
}

/**
 * Worker threads for one function, each running one invocation at a time (as a Lambda instance does). Threads
 * are reused; one that times out, crashes or runs out of memory is terminated and replaced on demand.
 *
 * With a limit (setLimit: the function's concurrency slots held), at most that many threads have work, and
 * invocations beyond them wait here; a thread that comes free takes its share of them, up to MAX_BATCH, in one
 * message, and runs them one after another, each with its own deadline and outcome. A timeout or crash fails the
 * invocation that was running; the rest of its batch never started and goes back to the queue for another thread.
 */
export class HandlerPool implements InvocationRunner {
  private readonly idle: Thread[] = [];
  private readonly busy = new Set<Thread>();
  private readonly all = new Set<Thread>();
  /** Threads still loading their module: they take what waits once ready, so a warm thread that frees first gets it. */
  private readonly starting = new Set<Thread>();
  private readonly queue: Call[] = [];
  private limit = Infinity;
  /** The topics each thread last got (the function worker keeps one object until they change). */
  private readonly topicsSent = new WeakMap<Thread, InvokeRequest['topics']>();

  constructor(
    private readonly options: HandlerPoolOptions,
    private readonly log: Logger,
  ) {}

  setLimit(threads: number): void {
    this.limit = threads;
    this.schedule();
  }

  invoke(request: Request, signal: AbortSignal): Promise<InvocationOutcome> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(aborted(true));
      const call: Call = { request, signal, resolve, onAbort: () => this.abort(call), thread: null, startedAt: 0 };
      signal.addEventListener('abort', call.onAbort);
      this.queue.push(call);
      this.schedule();
    });
  }

  /**
   * Hands waiting invocations to free threads while fewer than the limit have work, and starts threads for what
   * still waits. A new thread takes its calls only once loaded (which may take seconds): until then they stay here,
   * for whichever thread is free first.
   */
  private schedule(): void {
    while (this.queue.length && this.busy.size < this.limit && this.idle.length) {
      const thread = this.idle.pop()!;
      const calls = this.queue.splice(0, this.share());
      for (const call of calls) call.thread = thread;
      thread.calls = calls;
      this.busy.add(thread);
      this.send(thread);
    }
    while (this.starting.size < this.queue.length && this.busy.size + this.starting.size < this.limit)
      this.starting.add(this.spawn());
  }

  /** An even share of what waits over the threads allowed, so that a few waiting still go to as many threads. */
  private share(): number {
    return Math.min(MAX_BATCH, Number.isFinite(this.limit) ? Math.ceil(this.queue.length / this.limit) : 1);
  }

  private spawn(): Thread {
    const channel = new MessageChannel();
    // Before an SDK publish is attributed, the results the thread already posted are read: the invocation that
    // published is then the one running, even when a batch's next one started before this thread heard of it.
    const slot = this.options.endpoint?.slot(() => this.catchUp(thread));
    const sdk = slot ? this.options.endpoint!.environment(slot, { ...process.env, ...this.options.environment }) : {};
    const worker = new Worker(THREAD_ENTRY.code, {
      eval: THREAD_ENTRY.eval,
      workerData: {
        modulePath: this.options.modulePath,
        exportName: this.options.exportName,
        functionName: this.options.functionName,
        results: channel.port2,
      },
      transferList: [channel.port2],
      // The SDK's SNS endpoint is this thread's own; the function's environment may still point it elsewhere.
      env: { ...process.env, ...sdk, ...this.options.environment },
      resourceLimits: { maxOldGenerationSizeMb: this.options.memoryLimitMb },
      name: `rowcast function ${this.options.functionName}`,
    });
    const thread: Thread = {
      worker,
      results: channel.port1,
      slot,
      ready: false,
      calls: [],
      timer: undefined,
      spawnedAt: Date.now(),
      dying: false,
      gone: false,
    };
    worker.unref();
    this.all.add(thread);
    thread.results.on('message', (m: ThreadMessage) => this.onMessage(thread, m));
    thread.results.unref();
    worker.on('error', (err: Error) =>
      this.lose(
        thread,
        thread.ready
          ? failure(
              err.name === 'Error' ? 'HandlerCrashed' : err.name,
              `the handler's thread crashed: ${err.message}`,
              thread,
            )
          : failure('HandlerCrashed', `the handler's thread crashed while loading: ${err.message}`, thread),
      ),
    );
    worker.once('exit', (code: number) => {
      this.lose(
        thread,
        thread.ready
          ? failure('HandlerCrashed', `the handler's thread exited (code ${code})`, thread)
          : failure('HandlerCrashed', `the handler's thread exited while loading (code ${code})`, thread),
      );
      this.all.delete(thread);
      thread.results.close();
      slot?.close();
    });
    thread.timer = setTimeout(
      () =>
        this.lose(
          thread,
          failure(
            'InitTimeoutError',
            `the handler module did not load within ${INIT_TIMEOUT_MS} ms; make its top-level code faster (connect lazily, import less)`,
            thread,
          ),
          () => !thread.ready,
        ),
      INIT_TIMEOUT_MS,
    );
    return thread;
  }

  /** Sends a ready thread its batch: one message, however many invocations. */
  private send(thread: Thread): void {
    // The newest topics of the batch (invoked in order), for all of it: publish() checks against the latest.
    const { topics } = thread.calls[thread.calls.length - 1]!.request;
    if (this.topicsSent.get(thread) !== topics) {
      thread.worker.postMessage({ type: 'topics', topics } satisfies ToThreadMessage);
      this.topicsSent.set(thread, topics);
    }
    const items = thread.calls.map(({ request: { topics: _, ...item } }) => item);
    thread.worker.postMessage({ type: 'invoke', items, timeout: this.options.timeout } satisfies ToThreadMessage);
    this.begin(thread);
  }

  /** The first of the thread's batch starts: its timeout runs, and SDK publishes belong to it. */
  private begin(thread: Thread): void {
    const call = thread.calls[0]!;
    call.startedAt = Date.now();
    thread.slot?.begin(call.request.id);
    clearTimeout(thread.timer);
    thread.timer = setTimeout(
      () =>
        this.lose(
          thread,
          failure('TimeoutError', `timed out after ${this.options.timeout} ms`, thread),
          () => thread.calls[0] === call,
        ),
      this.options.timeout + TERMINATE_GRACE_MS,
    );
  }

  /** Reads what the thread posted and this thread has not handled yet. */
  private catchUp(thread: Thread): void {
    for (let m = receiveMessageOnPort(thread.results); m; m = receiveMessageOnPort(thread.results))
      this.onMessage(thread, m.message as ThreadMessage);
  }

  private onMessage(thread: Thread, m: ThreadMessage): void {
    if (thread.gone) return;
    if (m.type === 'init') {
      thread.ready = true;
      this.starting.delete(thread);
      clearTimeout(thread.timer);
      thread.timer = undefined;
      if (!thread.dying) this.free(thread);
      return;
    }
    const call = thread.calls[0];
    // Not the running invocation: one aborted and taken out of the batch, which the thread reached before its skip.
    if (!call || m.id !== call.request.id) return;
    if (m.type === 'log') {
      this.log[m.level]({ function: this.options.functionName, invocation: m.id }, m.message);
      return;
    }
    clearTimeout(thread.timer);
    thread.timer = undefined;
    // What the SDK published joins the attempt's own publishes: written with its success, dropped otherwise.
    const viaSdk = thread.slot?.end() ?? [];
    const durationMs = Date.now() - call.startedAt;
    let outcome: InvocationOutcome;
    if (m.type === 'skipped') outcome = { ok: false, error: UNSTARTED, durationMs: 0, unstarted: true };
    else if (durationMs > this.options.timeout) outcome = timedOut(this.options.timeout, durationMs);
    else if (m.ok)
      outcome = {
        ok: true,
        result: m.result,
        published: viaSdk.length ? [...m.published, ...viaSdk] : m.published,
        durationMs,
      };
    else outcome = { ok: false, error: m.error, durationMs };
    thread.calls.shift();
    this.settle(call, outcome);
    if (thread.calls.length) return this.begin(thread);
    // While lose() reads what a thread posted, it does not take new work: lose() decides.
    if (!thread.dying) this.free(thread);
  }

  /** A thread with nothing left to run: idle, or given what waits. */
  private free(thread: Thread): void {
    this.busy.delete(thread);
    this.idle.push(thread);
    this.schedule();
  }

  /**
   * The thread is lost (timed out, crashed, exited, did not load, or its running invocation was aborted): that
   * invocation fails; the rest of its batch never started and waits for another thread.
   */
  private lose(thread: Thread, outcome: InvocationOutcome, stillApplies?: () => boolean): void {
    if (thread.gone) return;
    // Results it posted before it was lost count: the invocation that failed is the one that was running. A timeout
    // or an abort whose invocation turns out to have ended meanwhile no longer applies (its successor's timer runs).
    thread.dying = true;
    this.catchUp(thread);
    thread.dying = false;
    if (stillApplies && !stillApplies()) {
      if (!thread.calls.length && thread.ready) this.free(thread);
      return;
    }
    thread.gone = true;
    clearTimeout(thread.timer);
    thread.slot?.end();
    this.busy.delete(thread);
    const at = this.idle.indexOf(thread);
    if (at >= 0) this.idle.splice(at, 1);
    void thread.worker.terminate();
    // One that did not load fails what it was started for, as Lambda fails an invocation whose init failed.
    if (this.starting.delete(thread)) for (const call of this.queue.splice(0, this.share())) this.settle(call, outcome);
    const [running, ...rest] = thread.calls;
    thread.calls = [];
    if (running) this.settle(running, { ...outcome, durationMs: Date.now() - running.startedAt });
    for (const call of rest) call.thread = null;
    this.queue.unshift(...rest);
    // Not at once: at shutdown every invocation is aborted in one go, and the rest must not start on another thread.
    queueMicrotask(() => this.schedule());
  }

  private abort(call: Call): void {
    const thread = call.thread;
    if (!thread) {
      const waiting = this.queue.indexOf(call);
      if (waiting >= 0) this.queue.splice(waiting, 1);
      return this.settle(call, aborted(true));
    }
    const at = thread.calls.indexOf(call);
    if (at < 0) return;
    if (at === 0) return this.lose(thread, aborted(false), () => thread.calls[0] === call);
    // Not started: taken out of the batch, and the thread skips it.
    thread.calls.splice(at, 1);
    this.settle(call, aborted(true));
    thread.worker.postMessage({ type: 'skip', id: call.request.id } satisfies ToThreadMessage);
  }

  private settle(call: Call, outcome: InvocationOutcome): void {
    call.signal.removeEventListener('abort', call.onAbort);
    call.thread = null;
    call.resolve(outcome);
  }

  async close(): Promise<void> {
    for (const call of this.queue.splice(0)) this.settle(call, aborted(true));
    this.idle.length = 0;
    await Promise.all([...this.all].map((t) => t.worker.terminate()));
  }
}

const UNSTARTED = { type: 'Unstarted', message: 'handed back unstarted: its lease would not outlast it', stack: [] };

function aborted(unstarted: boolean): InvocationOutcome {
  return {
    ok: false,
    error: { type: 'Aborted', message: 'aborted: rowcast is shutting down', stack: [] },
    durationMs: 0,
    ...(unstarted ? { unstarted: true } : {}),
  };
}

function timedOut(timeout: number, durationMs: number): InvocationOutcome {
  return {
    ok: false,
    error: { type: 'TimeoutError', message: `timed out after ${timeout} ms`, stack: [] },
    durationMs,
  };
}

function failure(type: string, message: string, thread: Thread): InvocationOutcome {
  return { ok: false, error: { type, message, stack: [] }, durationMs: Date.now() - thread.spawnedAt };
}

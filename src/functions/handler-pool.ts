import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
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

/**
 * Worker threads for one function, each running one invocation at a time (as a Lambda instance does). Threads
 * are reused; one that times out, crashes or runs out of memory is terminated and replaced on demand.
 */
export class HandlerPool implements InvocationRunner {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  /** Threads whose handler module has loaded: the timeout of an invocation counts from then. */
  private readonly initialised = new WeakSet<Worker>();
  /** Each thread's SNS endpoint for the AWS SDK. */
  private readonly slots = new WeakMap<Worker, InvocationSlot>();
  /** The topics each thread last got (the function worker keeps one object until they change). */
  private readonly topicsSent = new WeakMap<Worker, InvokeRequest['topics']>();

  constructor(
    private readonly options: HandlerPoolOptions,
    private readonly log: Logger,
  ) {}

  private spawn(): Worker {
    const slot = this.options.endpoint?.slot();
    const sdk = slot ? this.options.endpoint!.environment(slot, { ...process.env, ...this.options.environment }) : {};
    const worker = new Worker(THREAD_ENTRY.code, {
      eval: THREAD_ENTRY.eval,
      workerData: {
        modulePath: this.options.modulePath,
        exportName: this.options.exportName,
        functionName: this.options.functionName,
      },
      // The SDK's SNS endpoint is this thread's own; the function's environment may still point it elsewhere.
      env: { ...process.env, ...sdk, ...this.options.environment },
      resourceLimits: { maxOldGenerationSizeMb: this.options.memoryLimitMb },
      name: `rowcast function ${this.options.functionName}`,
    });
    worker.unref();
    this.all.add(worker);
    if (slot) this.slots.set(worker, slot);
    worker.once('exit', () => {
      this.all.delete(worker);
      slot?.close();
    });
    return worker;
  }

  async invoke(request: Omit<InvokeRequest, 'deadline'>, signal: AbortSignal): Promise<InvocationOutcome> {
    const worker = this.idle.pop() ?? this.spawn();
    if (!this.initialised.has(worker)) {
      const failed = await this.init(worker, signal);
      if (failed) return failed;
    }
    return this.run(worker, request, signal);
  }

  /** Waits for a new thread's init phase; resolves with the failure when it crashes, hangs or is aborted. */
  private init(worker: Worker, signal: AbortSignal): Promise<InvocationOutcome | null> {
    const started = Date.now();
    return new Promise((resolve) => {
      const done = (failure: { type: string; message: string } | null) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
        if (failure) void worker.terminate();
        else this.initialised.add(worker);
        resolve(failure && { ok: false, error: { ...failure, stack: [] }, durationMs: Date.now() - started });
      };
      const onMessage = (m: ThreadMessage) => m.type === 'init' && done(null);
      const onError = (err: Error) =>
        done({ type: 'HandlerCrashed', message: `the handler's thread crashed while loading: ${err.message}` });
      const onExit = (code: number) =>
        done({ type: 'HandlerCrashed', message: `the handler's thread exited while loading (code ${code})` });
      const onAbort = () => done({ type: 'Aborted', message: 'aborted: rowcast is shutting down' });
      const timer = setTimeout(
        () =>
          done({
            type: 'InitTimeoutError',
            message: `the handler module did not load within ${INIT_TIMEOUT_MS} ms; make its top-level code faster (connect lazily, import less)`,
          }),
        INIT_TIMEOUT_MS,
      );
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal.addEventListener('abort', onAbort);
    });
  }

  private run(
    worker: Worker,
    request: Omit<InvokeRequest, 'deadline'>,
    signal: AbortSignal,
  ): Promise<InvocationOutcome> {
    const started = Date.now();
    const deadline = started + this.options.timeout;
    const slot = this.slots.get(worker);
    return new Promise<InvocationOutcome>((resolve) => {
      let settled = false;
      const finish = (outcome: InvocationOutcome, reusable: boolean) => {
        if (settled) return;
        settled = true;
        // What the SDK published joins the attempt's own publishes: written with its success, dropped otherwise.
        const viaSdk = slot?.end() ?? [];
        if (outcome.ok && viaSdk.length) outcome = { ...outcome, published: [...outcome.published, ...viaSdk] };
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
        if (reusable) this.idle.push(worker);
        else void worker.terminate();
        resolve(outcome);
      };
      const fail = (type: string, message: string, reusable = false) =>
        finish({ ok: false, error: { type, message, stack: [] }, durationMs: Date.now() - started }, reusable);
      const onMessage = (m: ThreadMessage) => {
        if (m.type === 'init' || m.id !== request.id) return;
        if (m.type === 'log') {
          this.log[m.level]({ function: this.options.functionName, invocation: request.id }, m.message);
          return;
        }
        if (Date.now() > deadline) return fail('TimeoutError', `timed out after ${this.options.timeout} ms`, true);
        finish(
          m.ok
            ? { ok: true, result: m.result, published: m.published, durationMs: Date.now() - started }
            : { ok: false, error: m.error, durationMs: Date.now() - started },
          true,
        );
      };
      const onError = (err: Error) =>
        fail(err.name === 'Error' ? 'HandlerCrashed' : err.name, `the handler's thread crashed: ${err.message}`);
      const onExit = (code: number) => fail('HandlerCrashed', `the handler's thread exited (code ${code})`);
      const onAbort = () => fail('Aborted', 'aborted: rowcast is shutting down');
      const timer = setTimeout(
        () => fail('TimeoutError', `timed out after ${this.options.timeout} ms`),
        this.options.timeout + TERMINATE_GRACE_MS,
      );
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal.addEventListener('abort', onAbort);
      slot?.begin(request.id);
      const { topics, ...invocation } = request;
      if (this.topicsSent.get(worker) !== topics) {
        worker.postMessage({ type: 'topics', topics } satisfies ToThreadMessage);
        this.topicsSent.set(worker, topics);
      }
      worker.postMessage({ type: 'invoke', ...invocation, deadline } satisfies ToThreadMessage);
    });
  }

  async close(): Promise<void> {
    this.idle.length = 0;
    await Promise.all([...this.all].map((w) => w.terminate()));
  }
}

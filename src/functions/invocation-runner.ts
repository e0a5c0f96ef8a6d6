import type { HandlerError, InvokeRequest, PublishedMessage } from '../model/thread-protocol.js';

export type InvocationOutcome =
  | { ok: true; result: string | null; published: PublishedMessage[]; durationMs: number }
  /** unstarted: it never ran (aborted while it waited, or its startBy passed): hand it back, count no attempt. */
  | { ok: false; error: HandlerError; durationMs: number; unstarted?: true };

/**
 * Where the function worker runs an invocation: "run this invocation with this payload within the function's
 * timeout, and give me the result or the error, and the messages it published". Worker threads (Node) and
 * runtime processes speaking Lambda's Runtime API (Python, provided) both implement it, so claims, retries,
 * maximum event age, on-failure records and history are the same code for every runtime.
 */
export interface InvocationRunner {
  invoke(request: Omit<InvokeRequest, 'deadline'>, signal: AbortSignal): Promise<InvocationOutcome>;
  /**
   * This rowcast process gave the function's concurrency slots back: stop what is idle, so that runtime processes
   * over all rowcast processes never outnumber the function's concurrency (worker threads may stay: they are cheap).
   */
  releaseIdle?(): void;
  /**
   * How many may run at once now (the function's slots held in this process). A runner that has it queues what
   * is invoked beyond that and hands it to its threads in batches, so it may be invoked for more than it runs.
   */
  setLimit?(n: number): void;
  /** Stops every thread or process of the function. */
  close(): Promise<void>;
}

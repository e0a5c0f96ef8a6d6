import { z } from 'zod';
import { duration } from './duration.js';
import { topicName } from './topic-schema.js';

/** Function names follow Lambda's rules, so an ARN's last part maps to a rowcast function. */
export const functionName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1–64 letters, digits, "-" or "_" (as Lambda function names)');

/** Defaults mirror Lambda's asynchronous invocation. */
export const functionSchema = z.strictObject({
  /**
   * Node: the handler module, "./handlers/writer.ts" (export `handler`) or "./handlers/writer.ts#otherExport",
   * relative to the config file. Python: "module.function" in `directory` (Lambda's handler, e.g.
   * "lambda_function.lambda_handler"). provided: passed to the bootstrap as _HANDLER.
   */
  handler: z.string().min(1),
  /**
   * How the handler runs: "nodejs" (default: a worker thread, the fastest), "python3" or "python3.x" (the machine's
   * python3, through rowcast's bootstrap), or "provided" (your executable `bootstrap`); the last two speak Lambda's
   * Runtime API from a process of their own.
   */
  runtime: z
    .string()
    .regex(
      /^(nodejs(\d+\.x)?|python3(\.\d+)?|provided(\.al2(023)?)?)$/,
      'one of "nodejs", "python3" (or "python3.12" …), "provided"',
    )
    .default('nodejs'),
  /** python3 and provided: the function's code (Lambda's LAMBDA_TASK_ROOT), relative to the config file; default: the config file's folder. */
  directory: z.string().min(1).optional(),
  /** provided: the executable that speaks the Runtime API, relative to `directory`; default "bootstrap". */
  bootstrap: z.string().min(1).optional(),
  /** Attempts in all (Lambda: 1 + 2 retries). */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /** Backoff before the 2nd attempt, doubling per attempt with jitter (Lambda waits about 1 min, then 2 min). */
  minDelay: duration.default(60_000),
  maxDelay: duration.default(5 * 60_000),
  /** An invocation older than this is not tried again: it goes to the on-failure topic (Lambda: 6 h). */
  maxEventAge: duration.default(6 * 3_600_000),
  /** Time one attempt may take; then its thread is terminated and the attempt fails (Lambda's default: 3 s). */
  timeout: duration.default(3000),
  /** Invocations in flight at once over all rowcast processes (reserved concurrency); 0 pauses the function, its invocations wait. */
  concurrency: z.number().int().min(0).max(1000).default(10),
  /** Where invocations that fail for good go: a topic receiving Lambda's destination record (event, error, attempts, function). */
  onFailure: z.strictObject({ topic: topicName }).optional(),
  /** Environment variables of the handler (process.env in its thread), e.g. ENV_TOPIC_ARN. */
  environment: z.record(z.string(), z.string()).default({}),
  /**
   * Node: heap limit of a handler thread. python3/provided: resident memory of the runtime process (watched), which
   * is killed past it. A handler that leaks past it fails that attempt, not rowcast.
   */
  memoryLimitMb: z.number().int().min(16).max(16_384).default(256),
});

export type FunctionConfig = z.output<typeof functionSchema>;

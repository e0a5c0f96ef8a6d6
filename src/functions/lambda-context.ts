/** Types for handler authors: `export const handler = async (event: unknown, context: LambdaContext) => {…}`. */

export interface PublishOptions {
  subject?: string;
  attributes?: Record<string, string>;
  groupKey?: string;
  dedupKey?: string;
}

export interface LambdaContext {
  /** The invocation id (the same on every attempt of this invocation). */
  invocationId: string;
  /** Alias of invocationId, as in AWS Lambda. */
  awsRequestId: string;
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  /** 1 for the first attempt. */
  attempt: number;
  clientContext: unknown;
  /** W3C traceparent of the change that caused this invocation, if the writer set rowcast.traceparent. */
  traceparent: string | null;
  callbackWaitsForEmptyEventLoop: boolean;
  /** Aborted at the timeout: stop work early. */
  signal: AbortSignal;
  getRemainingTimeInMillis(): number;
  log: Record<'debug' | 'info' | 'warn' | 'error', (message: unknown, ...rest: unknown[]) => void>;
  /**
   * Publishes to a topic (name or SNS topic ARN). The message is written only if this invocation succeeds, in the
   * same transaction that records the success: a failed or timed-out attempt publishes nothing.
   */
  publish(topic: string, message: unknown, options?: PublishOptions): Promise<{ messageId: string; MessageId: string }>;
}

/** The tracer's interface, shared by tracing.ts (the switch the workers call) and otel-tracer.ts (the SDK side). */

/** What the workers tell the tracer about a delivery attempt as it starts. */
export interface DeliverySpanStart {
  deliveryId: string;
  messageId: string;
  topic: string;
  subscription: string;
  protocol: string;
  endpoint: string;
  /** The subscription's protocol options (broker destinations are read from them). */
  options: unknown;
  attempt: number;
  /** The message's traceparent: the span's parent if there is one. */
  parent: string | null;
}

export interface InvocationSpanStart {
  invocationId: string;
  function: string;
  attempt: number;
  parent: string | null;
}

/** A started span; `traceparent` is its own context, to pass downstream (webhook header, handler context). */
export interface AttemptSpan {
  readonly traceparent: string;
  /** Ends it: an error (a failed attempt) sets its status to ERROR. */
  end(result: { error?: string | null; status?: number | null; outcome?: string }): void;
}

/** The loaded SDK side (otel-tracer.ts). */
export interface Tracer {
  delivery(start: DeliverySpanStart): AttemptSpan;
  invocation(start: InvocationSpanStart): AttemptSpan;
  /** Exports what is buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

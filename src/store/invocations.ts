/** The source of an invocation a caller waits for (Lambda's RequestResponse): tried once, no on-failure record. */
export const REQUEST_RESPONSE_SOURCE = 'request-response';

export interface ClaimedInvocation {
  key: string;
  /** The function: the group that concurrency limits apply to. */
  group: string;
  id: string;
  attempt: number;
  /** The lease's fencing token: its result and release are recorded only while the row still has it. */
  lease: string;
  payload: string;
  clientContext: unknown;
  trace: string | null;
  /** Milliseconds since the invocation was queued. */
  ageMs: number;
  /** A caller waits for it (RequestResponse): tried once, its error answers the caller instead of the on-failure topic. */
  synchronous: boolean;
}

/** A claimed invocation as claims (and routing's direct leases) return it, as json. */
export interface ClaimedInvocationRow {
  id: string;
  attempts: number;
  lease: string;
  payload: string;
  client_context: unknown;
  trace: string | null;
  /** Absent for one leased as it was created. */
  age_ms?: number;
  /** Absent for one leased as it was created (routing creates asynchronous invocations only). */
  source?: string;
}

export function toClaimedInvocation(fn: string, r: ClaimedInvocationRow): ClaimedInvocation {
  return {
    key: r.id,
    group: fn,
    id: r.id,
    attempt: r.attempts,
    lease: r.lease,
    payload: r.payload,
    clientContext: r.client_context,
    trace: r.trace,
    ageMs: Number(r.age_ms ?? 0),
    synchronous: r.source === REQUEST_RESPONSE_SOURCE,
  };
}

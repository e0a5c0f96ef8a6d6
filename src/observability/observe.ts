import { EventEmitter } from 'node:events';

/**
 * In-process observations (noun:verb), emitted by the workers with one line each and consumed by metrics, the
 * dashboard's live tail and its charts. Emitting costs a function call when nobody listens.
 */
export interface ObservedEvents {
  /** The router routed a batch of captured events. */
  'events:routed': { events: number; deliveries: number; invocations: number };
  /** One delivery attempt finished (sent, failed, or given up on). */
  'delivery:attempted': {
    deliveryId: string;
    messageId: string;
    subscription: string;
    protocol: string;
    attempt: number;
    /** delivered: acknowledged; failed: will be retried; dead: given up (until redriven). */
    outcome: 'delivered' | 'failed' | 'dead';
    status: number | null;
    durationMs: number;
    /** delivered: from the message's creation (routing, right after the writer's commit) to the subscriber's ack. */
    latencyMs: number | null;
  };
  /** This process disabled a subscription: its disableAfter tripped, or its endpoint answered 410 Gone. */
  'subscription:disabled': {
    subscription: string;
    cause: 'failing_for' | 'dead_deliveries' | 'endpoint_gone';
    reason: string;
  };
  /** The process reloaded subscriptions, topics and paused functions after a config change (NOTIFY rowcast_config). */
  'config:reloaded': Record<string, never>;
  /** One invocation attempt of a function finished. */
  'invocation:finished': {
    invocationId: string;
    function: string;
    attempt: number;
    outcome: 'done' | 'retry' | 'failed';
    durationMs: number;
  };
}

export type ObservedEvent = keyof ObservedEvents;

class Observer {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every HTTP server of the process (metrics, tail, stats) listens; there is no leak to warn about.
    this.emitter.setMaxListeners(0);
  }

  emit<K extends ObservedEvent>(event: K, data: ObservedEvents[K]): void {
    if (this.emitter.listenerCount(event)) this.emitter.emit(event, data);
  }

  /** Subscribes; returns the unsubscribe function. A listener that throws is its own problem: it is isolated. */
  on<K extends ObservedEvent>(event: K, listener: (data: ObservedEvents[K]) => void): () => void {
    const safe = (data: ObservedEvents[K]) => {
      try {
        listener(data);
      } catch {
        // Observers must never break the worker that emitted.
      }
    };
    this.emitter.on(event, safe);
    return () => void this.emitter.off(event, safe);
  }
}

/** The process's observation hub. */
export const observe = new Observer();

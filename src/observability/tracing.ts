import type { Logger } from './logger.js';

/**
 * OpenTelemetry spans, one per delivery attempt and one per invocation attempt, exported over OTLP/HTTP (JSON).
 * Off unless an endpoint is configured (runtime.tracing.endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_EXPORTER_OTLP_ENDPOINT). The SDK is imported only then (otel-tracer.ts): a process without tracing loads
 * none of it, and the workers' hot path costs one boolean check (`tracing.enabled`).
 */

/** runtime.tracing (src/config/runtime-schema.ts); each setting overrides its OTEL_* environment variable. */
export interface TracingSettings {
  /** OTLP/HTTP base URL of the collector, e.g. http://collector:4318 (spans go to <endpoint>/v1/traces). */
  endpoint?: string;
  serviceName?: string;
  /** Share of new traces recorded (parent-based: a writer's sampled flag is followed). */
  sampleRatio?: number;
}

export type { AttemptSpan, DeliverySpanStart, InvocationSpanStart, Tracer } from './tracer.js';
import type { AttemptSpan, DeliverySpanStart, InvocationSpanStart, Tracer } from './tracer.js';

/** The one flag the workers check before they build anything for a span. */
export const tracing = { enabled: false };

let tracer: Tracer | null = null;
let starting: Promise<Tracer | null> | null = null;
let users = 0;

/** Starts a span for a delivery attempt; call only when tracing.enabled. */
export function startDeliverySpan(start: DeliverySpanStart): AttemptSpan | null {
  return tracer ? tracer.delivery(start) : null;
}

/** Starts a span for an invocation attempt; call only when tracing.enabled. */
export function startInvocationSpan(start: InvocationSpanStart): AttemptSpan | null {
  return tracer ? tracer.invocation(start) : null;
}

/**
 * The OTLP traces URL tracing would export to, or null when tracing is off. OTel conventions: the per-signal
 * variable is used as is, the general one gets /v1/traces appended; OTEL_SDK_DISABLED=true or
 * OTEL_TRACES_EXPORTER=none turn it off.
 */
export function tracesUrl(settings: TracingSettings = {}, env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
  if (settings.endpoint) return withTracesPath(settings.endpoint);
  if (env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER.split(',').every((e) => e.trim() !== 'otlp')) return null;
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.trim();
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()) return withTracesPath(env.OTEL_EXPORTER_OTLP_ENDPOINT.trim());
  return null;
}

function withTracesPath(base: string): string {
  return /\/v1\/traces\/?$/.test(base) ? base : `${base.replace(/\/+$/, '')}/v1/traces`;
}

export interface TracingHandle {
  /** Exports the spans still buffered and stops (the last user of the process's tracer stops it). */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Starts the process's tracer if an endpoint is configured; null otherwise (nothing loaded). Runtimes of one
 * process share it: the first one's settings apply, and the last one to stop flushes and shuts it down.
 */
export async function startTracing(
  settings: TracingSettings,
  options: { serviceInstanceId: string; log: Logger },
): Promise<TracingHandle | null> {
  const url = tracesUrl(settings);
  if (!url) return null;
  users++;
  starting ??= import('./otel-tracer.js')
    .then(({ createTracer }) =>
      createTracer({
        url,
        serviceName: settings.serviceName,
        sampleRatio: settings.sampleRatio,
        serviceInstanceId: options.serviceInstanceId,
        log: options.log,
      }),
    )
    .catch((err: Error) => {
      options.log.error({ err: err.message }, 'tracing: could not start the OpenTelemetry SDK; running without spans');
      return null;
    });
  tracer = await starting;
  tracing.enabled = tracer !== null;
  if (!tracer) {
    users--;
    starting = null;
    return null;
  }
  let stopped = false;
  return {
    async stop(timeoutMs) {
      if (stopped) return;
      stopped = true;
      const current = tracer;
      if (--users === 0) {
        tracing.enabled = false;
        tracer = null;
        starting = null;
      }
      await withTimeout(users ? current?.flush() : current?.shutdown(), timeoutMs).catch((err: Error) =>
        options.log.warn({ err: err.message }, 'tracing: exporting the last spans failed'),
      );
    },
  };
}

/** Waits for the promise at most timeoutMs: shutdown must not hang on an unreachable collector. */
async function withTimeout(promise: Promise<void> | undefined, timeoutMs: number): Promise<void> {
  if (!promise) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, timeoutMs)))),
  ]).finally(() => clearTimeout(timer));
}

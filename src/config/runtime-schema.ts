import { z } from 'zod';
import { duration } from './duration.js';

/** rowcast's HTTP server (health checks, topic streams); served by `rowcast start` when a port is set. */
export const httpServerSchema = z.strictObject({
  /** Port to listen on; without one there is no HTTP server. 0 picks a free port. */
  port: z.number().int().min(0).max(65_535).optional(),
  /** Address to listen on; "0.0.0.0" or "::" for all interfaces (then a token is required, or allowUnauthenticated). */
  host: z.string().min(1).default('127.0.0.1'),
  /** Bearer token every route but /livez and /readyz requires ("Authorization: Bearer <token>"), or { env: "VARIABLE" } to read it from the environment. */
  token: z
    .union(
      [
        z.string().min(1),
        z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
      ],
      {
        error: 'write the bearer token, or { env: "VARIABLE" } to read it from an environment variable',
      },
    )
    .optional(),
  /**
   * Serve without a token on a non-loopback host. Off: such a start fails, since anyone who reaches the address could
   * use the admin API (rotate-secret answers with the new secret).
   */
  allowUnauthenticated: z.boolean().optional(),
  /**
   * Without a token, the names a request's Host header may carry besides loopback ones (localhost, 127.x.x.x, [::1])
   * and publicUrl's: other names are refused, so a web page cannot reach a loopback server through DNS rebinding.
   */
  allowedHosts: z
    .array(
      z
        .string()
        .regex(
          /^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/,
          'a host name or address without port or scheme, e.g. "rowcast.internal"',
        ),
    )
    .optional(),
  /** The URL subscribers reach this server at (e.g. behind a proxy); default http://host:port. */
  publicUrl: z
    .url({ protocol: /^https?$/, error: 'an absolute http:// or https:// URL, e.g. "https://rowcast.example.com"' })
    .optional(),
});

/**
 * OpenTelemetry spans (docs/operations.md "Tracing"): off unless `endpoint` (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
 * OTEL_EXPORTER_OTLP_ENDPOINT) is set. Each setting here overrides its OTEL_* environment variable.
 */
export const tracingSchema = z.strictObject({
  /** The collector's OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. "http://collector:4318"; spans are POSTed to <endpoint>/v1/traces. */
  endpoint: z
    .url({
      protocol: /^https?$/,
      error: 'an absolute http:// or https:// URL of an OTLP/HTTP collector, e.g. "http://127.0.0.1:4318"',
    })
    .optional(),
  /** service.name of the spans (OTEL_SERVICE_NAME); default "rowcast". */
  serviceName: z.string().min(1).optional(),
  /** Share of new traces recorded, 0–1 (parent-based: a writer's sampled flag is followed); default: OTEL_TRACES_SAMPLER, else all. */
  sampleRatio: z.number().min(0, 'between 0 and 1').max(1, 'between 0 and 1').optional(),
});

export const runtimeSchema = z.strictObject({
  /** Longest wait between checks for new work when no NOTIFY arrives (a lost NOTIFY costs at most this). */
  pollInterval: duration.default(1000),
  /** How long a claimed delivery belongs to a process; a process that dies releases its work after this. */
  lease: duration.default(60_000),
  /** Events routed per transaction. */
  batchSize: z.number().int().min(1).max(10_000).default(500),
  /** Concurrent deliveries per process, over all subscriptions. */
  concurrency: z.number().int().min(1).max(10_000).default(256),
  /** How long routed events and finished deliveries are kept for queries and replay. Dead deliveries stay until redriven or deadRetention. */
  retention: duration.default(24 * 3_600_000),
  deadRetention: duration.default(14 * 24 * 3_600_000),
  /** On SIGTERM: how long in-flight deliveries may finish before they are released to other processes. */
  shutdownGrace: duration.default(10_000),
  /** Log level of the rowcast process. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** The HTTP server: /livez, /readyz, /topics/:name/stream (see httpServerSchema). */
  http: httpServerSchema.prefault({}),
  /**
   * Webhook URL safety. false (default): webhooks are delivered to public addresses only — loopback, private
   * (RFC 1918, CGNAT, fc00::/7), link-local (incl. 169.254.169.254), unspecified, multicast and reserved addresses are
   * refused, checked on the address connected to after DNS resolution; a refused attempt fails with an error and is
   * retried. true: internal addresses are allowed (development, tests, endpoints inside a private network).
   */
  allowPrivateEndpoints: z.boolean().default(false),
  /** OpenTelemetry spans per delivery and invocation attempt (see tracingSchema). */
  tracing: tracingSchema.prefault({}),
});

export type RuntimeConfig = z.output<typeof runtimeSchema>;

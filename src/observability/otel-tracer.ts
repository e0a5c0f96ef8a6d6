import {
  type Attributes,
  type Context,
  diag,
  type DiagLogger,
  DiagLogLevel,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import type { Logger } from './logger.js';
import { redactUrl } from './redact.js';
import { validTraceparent } from '../model/trace-context.js';
import type { AttemptSpan, DeliverySpanStart, Tracer } from './tracer.js';

/**
 * The OpenTelemetry SDK side of tracing.ts, imported only when tracing is configured. Spans follow the semantic
 * conventions: HTTP client spans for webhooks, messaging "send" spans for brokers and function subscriptions,
 * FaaS attributes for invocations; ids of rowcast's own records go in rowcast.* attributes.
 */

// Incubating semantic conventions: copied, as @opentelemetry/semantic-conventions advises, rather than imported.
const ATTR_MESSAGING_SYSTEM = 'messaging.system';
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
const ATTR_MESSAGING_DESTINATION_TEMPLATE = 'messaging.destination.template';
const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
const ATTR_MESSAGING_RABBITMQ_ROUTING_KEY = 'messaging.rabbitmq.destination.routing_key';
const ATTR_FAAS_INVOCATION_ID = 'faas.invocation_id';
const ATTR_FAAS_NAME = 'faas.name';

/** messaging.system per subscription protocol (well-known values where the conventions have one). */
const MESSAGING_SYSTEM: Record<string, string> = {
  nats: 'nats',
  amqp: 'rabbitmq',
  redis: 'redis',
  mqtt: 'mqtt',
  function: 'rowcast',
  email: 'smtp',
  'email-json': 'smtp',
  log: 'log',
};
/** Where each broker's destination (a template with {topic}) is in the subscription's options. */
const DESTINATION_OPTION: Record<string, string> = {
  nats: 'subject',
  redis: 'stream',
  mqtt: 'topic',
  amqp: 'routingKey',
};

export interface TracerOptions {
  url: string;
  serviceName?: string;
  sampleRatio?: number;
  serviceInstanceId: string;
  log: Logger;
}

export function createTracer(options: TracerOptions): Tracer {
  diag.setLogger(diagToPino(options.log), DiagLogLevel.WARN);
  // Explicit settings win; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (envDetector) next; then rowcast's defaults.
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'rowcast', [ATTR_SERVICE_INSTANCE_ID]: options.serviceInstanceId }),
    )
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(options.serviceName ? resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }) : null);
  // Without a ratio in the config, the SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default: parent-based, always on).
  const sampler =
    options.sampleRatio !== undefined
      ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) })
      : undefined;
  // JSON encoding: every OTLP/HTTP collector takes it (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION still apply).
  const exporter = new OTLPTraceExporter({ url: options.url });
  const provider = new BasicTracerProvider({
    resource,
    ...(sampler ? { sampler } : {}),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('rowcast');
  options.log.info(
    { endpoint: redactUrl(options.url), service: resource.attributes[ATTR_SERVICE_NAME] },
    'tracing: exporting OpenTelemetry spans (OTLP/HTTP JSON)',
  );

  return {
    delivery(d) {
      const parent = parentContext(d.parent);
      const base: Attributes = {
        [ATTR_MESSAGING_MESSAGE_ID]: d.messageId,
        'rowcast.topic': d.topic,
        'rowcast.subscription': d.subscription,
        'rowcast.delivery_id': d.deliveryId,
        'rowcast.attempt': d.attempt,
        'rowcast.protocol': d.protocol,
      };
      if (d.protocol === 'http' || d.protocol === 'https') {
        // The host only: paths and queries of webhook URLs often hold tokens.
        const url = safeUrl(d.endpoint);
        const attributes: Attributes = { ...base, [ATTR_HTTP_REQUEST_METHOD]: 'POST' };
        if (url)
          Object.assign(attributes, {
            [ATTR_SERVER_ADDRESS]: url.hostname,
            [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
            [ATTR_URL_SCHEME]: url.protocol.slice(0, -1),
          });
        return attempt(tracer.startSpan('POST', { kind: SpanKind.CLIENT, attributes }, parent), true);
      }
      const { name, template, routingKey } = destination(d);
      const attributes: Attributes = {
        ...base,
        [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM[d.protocol] ?? d.protocol,
        [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
        [ATTR_MESSAGING_OPERATION_NAME]: 'send',
        [ATTR_MESSAGING_DESTINATION_NAME]: name,
      };
      if (template) attributes[ATTR_MESSAGING_DESTINATION_TEMPLATE] = template;
      if (routingKey) attributes[ATTR_MESSAGING_RABBITMQ_ROUTING_KEY] = routingKey;
      // A templated destination names the span (low cardinality), as the messaging conventions ask.
      return attempt(
        tracer.startSpan(`send ${template ?? name}`, { kind: SpanKind.PRODUCER, attributes }, parent),
        false,
      );
    },
    invocation(i) {
      const attributes: Attributes = {
        [ATTR_FAAS_INVOCATION_ID]: i.invocationId,
        [ATTR_FAAS_NAME]: i.function,
        'rowcast.attempt': i.attempt,
      };
      return attempt(
        tracer.startSpan(i.function, { kind: SpanKind.CONSUMER, attributes }, parentContext(i.parent)),
        false,
      );
    },
    flush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown();
      diag.disable();
    },
  };
}

/** The writer's (or upstream span's) context as a remote parent; none: the span starts a new trace. */
function parentContext(traceparent: string | null): Context {
  const valid = validTraceparent(traceparent);
  if (!valid) return ROOT_CONTEXT;
  const [, traceId, spanId, flags] = valid.split('-') as [string, string, string, string];
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

function attempt(span: Span, http: boolean): AttemptSpan {
  const ctx = span.spanContext();
  return {
    traceparent: `00-${ctx.traceId}-${ctx.spanId}-${ctx.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`,
    end({ error, status, outcome }) {
      if (status != null && http) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (outcome) span.setAttribute('rowcast.outcome', outcome);
      if (error) {
        span.setAttribute(ATTR_ERROR_TYPE, status != null ? String(status) : '_OTHER');
        span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      }
      span.end();
    },
  };
}

function destination(d: DeliverySpanStart): { name: string; template?: string; routingKey?: string } {
  if (d.protocol === 'function') return { name: d.endpoint };
  const options = (d.options ?? {}) as Record<string, unknown>;
  if (d.protocol === 'amqp') {
    const key = typeof options.routingKey === 'string' ? options.routingKey.replaceAll('{topic}', d.topic) : d.topic;
    return { name: typeof options.exchange === 'string' && options.exchange ? options.exchange : key, routingKey: key };
  }
  const field = DESTINATION_OPTION[d.protocol];
  const template = field && typeof options[field] === 'string' ? (options[field] as string) : undefined;
  if (!template) return { name: d.topic };
  const name = template.replaceAll('{topic}', d.topic);
  return name === template ? { name } : { name, template };
}

function safeUrl(endpoint: string): URL | null {
  try {
    return new URL(endpoint);
  } catch {
    return null;
  }
}

/** The SDK's own problems (an unreachable collector, dropped spans) go to rowcast's log. */
function diagToPino(log: Logger): DiagLogger {
  const at =
    (level: 'error' | 'warn' | 'info' | 'debug') =>
    (message: string, ...args: unknown[]) =>
      log[level](
        {
          otel: args
            .map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : undefined))
            .filter(Boolean),
        },
        `tracing: ${message}`,
      );
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), verbose: at('debug') };
}

import { z } from 'zod';
import { amqpOptionsSchema } from '../subscriptions/sinks/amqp/amqp-settings.js';
import { emailOptionsSchema, smtpSettingsSchema } from '../subscriptions/sinks/email/email-settings.js';
import { logOptionsSchema } from '../subscriptions/sinks/log/log-sink.js';
import { mqttOptionsSchema } from '../subscriptions/sinks/mqtt/mqtt-settings.js';
import { natsOptionsSchema } from '../subscriptions/sinks/nats/nats-settings.js';
import { redisOptionsSchema } from '../subscriptions/sinks/redis/redis-settings.js';
import { DEFAULT_SECRET_ROTATION_OVERLAP, MAX_SECRET_ROTATION_OVERLAP } from '../subscriptions/sinks/http/webhook-secret.js';
import { duration } from './duration.js';

/** Message formats of subscriptions (rendered by src/subscriptions/message-format.ts). */
export const FORMATS = ['envelope', 'raw', 'cloudevents', 'cloudevents-binary', 'sns'] as const;
export type MessageFormat = (typeof FORMATS)[number];

/** Names become parts of SQL identifiers and URLs, so they are restricted; tables may be named anything. */
/** SNS's topic names: 1–256 letters, digits, "-" and "_"; a FIFO topic's may end in ".fifo". */
export const TOPIC_NAME = /^(?=.{1,256}$)[A-Za-z0-9_-]+(\.fifo)?$/;
const topicName = z.string().regex(TOPIC_NAME, 'use 1–256 letters, digits, "-" or "_", optionally ending in ".fifo" (as SNS topic names)');
const subscriptionName = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'use 1–128 letters, digits, "-" or "_"');
/** Trigger names are "rowcast_<capture>_<op>" and must fit PostgreSQL's 63-byte identifiers. */
const captureName = z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'use 1–40 letters, digits, "-" or "_"');

export const topicSchema = z.strictObject({
  description: z.string().optional(),
  /** FIFO: each subscription receives a group's messages one at a time, in order (a capture's group is the row's primary key). */
  fifo: z.boolean().default(false),
  /** FIFO: a message whose dedupKey was seen within this window is dropped (SNS: 5 minutes). */
  dedupWindow: duration.default(5 * 60_000),
  /** FIFO: after a message of a group goes dead, continue with the group's next one, or hold the group until it is redriven. */
  onDeadMessage: z.enum(['continue', 'block-group']).default('continue'),
  /** Largest message body in bytes (SNS: 256 KiB). */
  maxMessageSize: z.number().int().min(1024).max(1024 * 1024 * 1024).default(256 * 1024),
  /**
   * Larger messages: reject — a function's publish throws, and a captured change's deliveries are dead with an error
   * saying so (redrive after raising the limit); claim-check — subscribers receive a signed, expiring link to the
   * stored body instead (needs runtime.http).
   */
  largeMessages: z.enum(['reject', 'claim-check']).default('reject'),
  /** claim-check: how long a link stays valid. */
  claimCheckTtl: duration.default(24 * 3_600_000),
  /** SNS envelopes (subscriptions with format 'sns'): SignatureVersion 1 signs with SHA1withRSA (SNS's default), 2 with SHA256withRSA. */
  signatureVersion: z.union([z.literal(1), z.literal(2)], { error: 'SignatureVersion 1 (SHA1withRSA, the default) or 2 (SHA256withRSA)' }).default(1),
});

export const OPERATIONS = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const;
export type Operation = (typeof OPERATIONS)[number];

const tableRef = z.union(
  [z.string().min(1), z.strictObject({ schema: z.string().min(1).default('public'), name: z.string().min(1) })],
  { error: 'write the table as "table", "schema.table", or { schema: "…", name: "…" } (for names that contain dots)' },
);

const whenClause = z.union(
  [z.string().min(1), z.strictObject({ insert: z.string().min(1).optional(), update: z.string().min(1).optional(), delete: z.string().min(1).optional() })],
  { error: 'write an SQL condition over OLD/NEW (e.g. "NEW.total > 100"), or { insert, update, delete } with one condition per operation' },
);

/** Source names key positions and appear in events. */
const sourceName = z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, 'use 1–63 letters, digits, "-" or "_"');

export const captureSchema = z.strictObject({
  /**
   * The database whose changes are captured: absent, the store itself (rowcast's own PostgreSQL); or the name of
   * one of `sources` (a MySQL/MariaDB server, whose table is written "database.table"; or another PostgreSQL
   * server, "schema.table"; see docs/sources.md).
   */
  source: sourceName.optional(),
  /** "table", "schema.table", or { schema, name } for names that contain dots. */
  table: tableRef,
  /** Which operations produce events. TRUNCATE produces one statement-level event without rows. */
  operations: z.array(z.enum(OPERATIONS)).min(1).default(['INSERT', 'UPDATE', 'DELETE']),
  /** keys: primary key only (the reference's "summary"); row: the new row (old row for DELETE); diff: old + new + changed columns. */
  payload: z.enum(['keys', 'row', 'diff']).default('row'),
  /** Only these columns in row and diff payloads (the primary key is always in `key`). */
  columns: z.array(z.string().min(1)).min(1).optional(),
  /** SQL boolean over OLD/NEW, evaluated by PostgreSQL before the row is captured; per operation or for all. */
  when: whenClause.optional(),
  /**
   * row: a trigger per changed row. statement: one trigger per statement that captures all its rows with one
   * INSERT … SELECT from transition tables (faster for multi-row statements; same events). Statement-level
   * UPDATE pairs old and new rows by primary key, so `diff` payloads and `when` conditions on UPDATE need one.
   * logical: no trigger at all; a running rowcast reads the committed changes from PostgreSQL's write-ahead log
   * (logical replication, a `pgoutput` slot) and writes the same events, so writers pay nothing extra. Needs
   * `wal_level = logical` and a role with REPLICATION; UPDATE/DELETE captures set the table's REPLICA IDENTITY
   * to FULL (old rows in the log). The events carry no trace context (`rowcast.traceparent` stays with the writer).
   */
  mode: z.enum(['row', 'statement', 'logical']).default('row'),
  /** The topic that receives one message per captured change — or, instead, `function`. */
  topic: topicName.optional(),
  /** The function invoked once per captured change (its event is the change event). */
  function: z.lazy(() => functionName).optional(),
  /** Subject of the messages (SNS "Subject"; email subject line). */
  subject: z.string().max(100).optional(),
});

const envRef = z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') });

/**
 * A database other than the store whose changes rowcast captures (docs/sources.md). mysql: a MySQL or MariaDB
 * server, read from its binary log (ROW format); its captures' `lambda_async` calls invoke functions.
 */
export const mysqlSourceSchema = z.strictObject({
  kind: z.literal('mysql'),
  /**
   * mysql://user:password@host:3306, or { env: "VARIABLE" } to read it from the environment (keeps the password out
   * of the config); never logged.
   */
  url: z.union([z.string().regex(/^mysql:\/\//, 'a mysql://user:password@host:port URL'), envRef], {
    error: 'write the URL (mysql://user:password@host:3306) or { env: "VARIABLE" } to read it from an environment variable',
  }),
  /** The replica server_id rowcast reads the binlog as: unique among the server's replicas and binlog readers. */
  serverId: z.number().int().min(1).max(4_294_967_295).default(4_242_424),
});

/** A replication slot's or publication's name on a PostgreSQL source. */
const pgObjectName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'use 1–63 lower-case letters, digits or "_", not starting with a digit');

/**
 * postgres: another PostgreSQL server (10+), read by logical replication (pgoutput) from a slot and a publication
 * that `rowcast apply` manages there; nothing else of rowcast is written on it.
 */
export const postgresSourceSchema = z.strictObject({
  kind: z.literal('postgres'),
  /** postgres://user:password@host:5432/database, or { env: "VARIABLE" }; never logged. */
  url: z.union([z.string().regex(/^postgres(ql)?:\/\//, 'a postgres://user:password@host:port/database URL'), envRef], {
    error: 'write the URL (postgres://user:password@host:5432/database) or { env: "VARIABLE" } to read it from an environment variable',
  }),
  /** The replication slot on the source (default rowcast_<source name>): one per store reading the source. */
  slot: pgObjectName.optional(),
  /** The publication on the source (default rowcast_<source name>). */
  publication: pgObjectName.optional(),
});

export const sourceSchema = z.discriminatedUnion('kind', [mysqlSourceSchema, postgresSourceSchema]);

export const deliveryPolicySchema = z.strictObject({
  /** Attempts in all, the first one included. */
  maxAttempts: z.number().int().min(1).max(100).default(10),
  /** Backoff before the 2nd attempt; it doubles per attempt up to maxDelay, with full jitter. */
  minDelay: duration.default(1000),
  maxDelay: duration.default(5 * 60_000),
  /** Time allowed for one request, connect to response headers. */
  timeout: duration.default(10_000),
  /** Longest Retry-After (429/503) that is honoured; longer ones are capped to this. */
  maxRetryAfter: duration.default(60 * 60_000),
});

/** Standard Webhooks secrets: "whsec_" and 24–64 random bytes in base64. */
export const WEBHOOK_SECRET = /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/;
const webhookSecretHint = 'a Standard Webhooks secret: "whsec_" followed by 24–64 random bytes in base64 (e.g. from `node -e "console.log(\'whsec_\' + crypto.randomBytes(24).toString(\'base64\'))"`), or omit it and rowcast generates one';

const secretRef = z.union(
  [z.string().regex(WEBHOOK_SECRET, webhookSecretHint), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') })],
  { error: 'write the signing secret ("whsec_…") or { env: "VARIABLE" } to read it from an environment variable' },
);

/**
 * disableAfter: disable a subscription whose endpoint keeps failing (off by default). A duration ("5d") is
 * { failingFor }; the object trips on whichever limit is reached first. Its deliveries wait, pending, until
 * `rowcast resume`.
 */
export const disableAfterSchema = z
  .union(
    [
      duration,
      z.strictObject({
        /** Every attempt failed for this long, with no success in between. */
        failingFor: duration.optional(),
        /** This many deliveries in a row went dead, with no success in between. */
        deadDeliveries: z.number({ error: 'a whole number of dead deliveries, e.g. 100' }).int('a whole number, e.g. 100').min(1, 'at least 1').optional(),
      }),
    ],
    { error: 'write a duration ("5d": disabled after failing for five days) or { failingFor: "5d", deadDeliveries: 100 }' },
  )
  .transform((v, ctx) => {
    const policy = typeof v === 'number' ? { failingFor: v } : v;
    if (policy.failingFor === undefined && policy.deadDeliveries === undefined) {
      ctx.addIssue({ code: 'custom', message: 'give failingFor (e.g. "5d"), deadDeliveries (e.g. 100), or both; or leave disableAfter out to never disable' });
      return z.NEVER;
    }
    if (policy.failingFor !== undefined && policy.failingFor < 1000) {
      ctx.addIssue({ code: 'custom', message: `failingFor ${policy.failingFor}ms is too short to tell a failing endpoint from a blip; write at least "1s" (Svix waits 5 days: "5d")` });
      return z.NEVER;
    }
    return { failingFor: policy.failingFor ?? null, deadDeliveries: policy.deadDeliveries ?? null };
  });

/** What every subscription has, whatever its protocol. */
export const subscriptionCommon = {
  topic: topicName,
  /**
   * envelope: rowcast's JSON (id, topic, subject, attributes, body, timestamp); raw: the message body only; CloudEvents 1.0 in structured or
   * binary (HTTP) mode; sns: SNS's signed HTTP envelope (http/https only; docs/sns.md).
   */
  format: z.enum(FORMATS).default('envelope'),
  /** SNS filter policy: only matching messages are delivered (validated at load). */
  filterPolicy: z.record(z.string(), z.unknown()).optional(),
  /** What the filter policy looks at: the message attributes (SNS's default) or the JSON body. */
  filterPolicyScope: z.enum(['MessageAttributes', 'MessageBody']).default('MessageAttributes'),
  deliveryPolicy: deliveryPolicySchema.prefault({}),
  /** Concurrent deliveries to this endpoint from one rowcast process. */
  maxConcurrency: z.number().int().min(1).max(1000).default(32),
  /** A topic that receives each delivery that went dead (with its last error), e.g. to page the ops team; it stays dead here too, for redrive. */
  deadLetter: z.strictObject({ topic: topicName }).optional(),
  /** Disable the subscription when its endpoint keeps failing (off by default); `rowcast resume` turns it back on. */
  disableAfter: disableAfterSchema.optional(),
};

export const httpSubscriptionSchema = z.strictObject({
  ...subscriptionCommon,
  protocol: z.enum(['http', 'https']),
  endpoint: z
    .url({ protocol: /^https?$/, error: 'an absolute http:// or https:// URL, e.g. "https://example.com/hooks/rowcast"' }),
  /** Standard Webhooks signing secret ("whsec_" + base64). Omitted: rowcast generates one at apply (see `rowcast status --secrets`). */
  secret: secretRef.optional(),
  /**
   * When `secret` changes, apply keeps the old secret valid this long: meanwhile every request carries a signature
   * with each secret, so receivers can switch at their own pace (Svix: 24 h; Stripe: up to 7 days). 0 ends the old
   * secret at once (after a leak).
   */
  secretRotationOverlap: duration
    .pipe(z.number().max(MAX_SECRET_ROTATION_OVERLAP, 'at most 30 days ("30d"); finish a rotation within a month'))
    .default(DEFAULT_SECRET_ROTATION_OVERLAP),
  /** Extra request headers (e.g. an API key); values may reference env as "${NAME}". */
  headers: z.record(z.string(), z.string()).default({}),
  /** format 'sns': SNS's RawMessageDelivery, the message body alone (with x-amz-sns-rawdelivery: true) instead of the signed envelope. */
  rawMessageDelivery: z.boolean().default(false),
  /**
   * format 'sns': whether the endpoint must confirm the subscription (SNS's SubscriptionConfirmation, answered by a GET of its
   * SubscribeURL) before it receives messages. Declared in the config the endpoint is trusted: 'none' by default.
   */
  confirmation: z.enum(['none', 'required']).default('none'),
});

/** A function as a subscription endpoint: each message queues one invocation (its event is the rendered message). */
export const functionSubscriptionSchema = z.strictObject({
  ...subscriptionCommon,
  protocol: z.literal('function'),
  function: z.lazy(() => functionName),
});

/** A protocol whose own settings are in `options`, validated by the schema in its sink folder (sinks/<protocol>/). */
const withOptions = <const P extends readonly [string, ...string[]], O extends z.ZodType>(protocols: P, options: O) =>
  z.strictObject({ ...subscriptionCommon, protocol: z.enum(protocols), options });

/** email: a readable mail per message; email-json: the envelope JSON as the mail body. */
export const emailSubscriptionSchema = withOptions(['email', 'email-json'], emailOptionsSchema);
/** NATS JetStream: published with Nats-Msg-Id = message id (deduplicated by the stream), done on the stream's ack. */
export const natsSubscriptionSchema = withOptions(['nats'], natsOptionsSchema);
/** RabbitMQ: persistent messages through a confirm channel, done on the publisher confirm. */
export const amqpSubscriptionSchema = withOptions(['amqp'], amqpOptionsSchema);
/** Redis Streams: XADD (optionally capped with MAXLEN), done on the entry id. */
export const redisSubscriptionSchema = withOptions(['redis'], redisOptionsSchema);
/** MQTT: QoS 1 or 2, done on PUBACK/PUBCOMP. */
export const mqttSubscriptionSchema = withOptions(['mqtt'], mqttOptionsSchema);
/** A JSON line per message on stdout or stderr, for development. */
export const logSubscriptionSchema = withOptions(['log'], logOptionsSchema);

export const subscriptionSchema = z.discriminatedUnion('protocol', [
  httpSubscriptionSchema,
  functionSubscriptionSchema,
  emailSubscriptionSchema,
  natsSubscriptionSchema,
  amqpSubscriptionSchema,
  redisSubscriptionSchema,
  mqttSubscriptionSchema,
  logSubscriptionSchema,
]);

/** Function names follow Lambda's rules, so an ARN's last part maps to a rowcast function. */
export const functionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1–64 letters, digits, "-" or "_" (as Lambda function names)');

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
    .regex(/^(nodejs(\d+\.x)?|python3(\.\d+)?|provided(\.al2(023)?)?)$/, 'one of "nodejs", "python3" (or "python3.12" …), "provided"')
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

/** rowcast's HTTP server (health checks, topic streams); served by `rowcast start` when a port is set. */
export const httpServerSchema = z.strictObject({
  /** Port to listen on; without one there is no HTTP server. 0 picks a free port. */
  port: z.number().int().min(0).max(65_535).optional(),
  /** Address to listen on; "0.0.0.0" or "::" for all interfaces (then a token is required, or allowUnauthenticated). */
  host: z.string().min(1).default('127.0.0.1'),
  /** Bearer token every route but /livez and /readyz requires ("Authorization: Bearer <token>"), or { env: "VARIABLE" } to read it from the environment. */
  token: z
    .union([z.string().min(1), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') })], {
      error: 'write the bearer token, or { env: "VARIABLE" } to read it from an environment variable',
    })
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
  allowedHosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, 'a host name or address without port or scheme, e.g. "rowcast.internal"')).optional(),
  /** The URL subscribers reach this server at (e.g. behind a proxy); default http://host:port. */
  publicUrl: z.url({ protocol: /^https?$/, error: 'an absolute http:// or https:// URL, e.g. "https://rowcast.example.com"' }).optional(),
});

/**
 * OpenTelemetry spans (docs/operations.md "Tracing"): off unless `endpoint` (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
 * OTEL_EXPORTER_OTLP_ENDPOINT) is set. Each setting here overrides its OTEL_* environment variable.
 */
export const tracingSchema = z.strictObject({
  /** The collector's OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. "http://collector:4318"; spans are POSTed to <endpoint>/v1/traces. */
  endpoint: z.url({ protocol: /^https?$/, error: 'an absolute http:// or https:// URL of an OTLP/HTTP collector, e.g. "http://127.0.0.1:4318"' }).optional(),
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

/** How rowcast names itself in the ARNs of its AWS surface (src/aws/arn.ts): labels only, no AWS account is used. */
export const awsSchema = z.strictObject({
  /** The region in ARNs rowcast makes (arn:aws:sns:<region>:…); clients may sign their requests for any region. */
  region: z.string().regex(/^[a-z0-9-]{1,32}$/, 'a region name such as "us-east-1"').default('us-east-1'),
  /** The 12-digit account id in ARNs rowcast makes. */
  accountId: z.string().regex(/^\d{12}$/, '12 digits, e.g. "000000000000"').default('000000000000'),
  /**
   * Who may call the SNS API (served by `rowcast start` with runtime.http): access key id → its secret access key,
   * or { env: "VARIABLE" } to read the secret from the environment. Requests are verified with AWS Signature V4;
   * without credentials every SNS request is refused.
   */
  credentials: z
    .record(
      z.string().regex(/^\w{16,128}$/, 'an access key id: 16–128 letters, digits or "_", e.g. "AKIAROWCASTEXAMPLE"'),
      z.union([z.string().min(16, 'a secret access key of at least 16 characters'), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') })], {
        error: 'write the secret access key, or { env: "VARIABLE" } to read it from an environment variable (recommended)',
      }),
    )
    .optional(),
  /** Settings of the SNS API. */
  sns: z
    .strictObject({
      /** Subscribe with protocol email / email-json: the sender and SMTP server of those subscriptions' mails. */
      email: z.strictObject({ from: emailOptionsSchema.shape.from, smtp: smtpSettingsSchema }).optional(),
    })
    .optional(),
});

/** `database`: where the store is, and how every connection of rowcast's processes to it behaves. */
export const databaseSchema = z.strictObject({
  url: z.string().min(1).optional(),
  /** Connecting (TCP and PostgreSQL's startup) gives up after this long: an unreachable server is an error, not a hang. */
  connectTimeout: duration.default(10_000),
  /** TCP keepalive probes start after this long idle: a connection to a vanished server breaks instead of idling forever. */
  keepAlive: duration.default(5_000),
  /**
   * A statement of rowcast's processes runs at most this long (PostgreSQL's statement_timeout). A few seconds
   * later the client gives up as well and closes the connection: a half-open socket (a partition) never holds
   * a worker. Migrations and logical capture's promotions of large transactions are exempt. 0: no limit.
   */
  statementTimeout: duration.default(30_000),
});

export const configSchema = z.strictObject({
  database: databaseSchema.prefault({}),
  topics: z.record(topicName, topicSchema).default({}),
  sources: z.record(sourceName, sourceSchema).default({}),
  captures: z.record(captureName, captureSchema).default({}),
  subscriptions: z.record(subscriptionName, subscriptionSchema).default({}),
  functions: z.record(functionName, functionSchema).default({}),
  runtime: runtimeSchema.prefault({}),
  aws: awsSchema.prefault({}),
});

/** What a user writes (defaults optional). */
export type RowcastConfigInput = z.input<typeof configSchema>;
/** What rowcast works with (defaults filled, durations in milliseconds). */
export type RowcastConfig = z.output<typeof configSchema>;
export type CaptureConfig = z.output<typeof captureSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;
export type MysqlSourceConfig = z.output<typeof mysqlSourceSchema>;
export type PostgresSourceConfig = z.output<typeof postgresSourceSchema>;
export type SubscriptionConfig = z.output<typeof subscriptionSchema>;
export type HttpSubscriptionConfig = z.output<typeof httpSubscriptionSchema>;
export type FunctionConfig = z.output<typeof functionSchema>;
export type DatabaseSettings = Omit<z.output<typeof databaseSchema>, 'url'>;
export type DeliveryPolicy = z.output<typeof deliveryPolicySchema>;
export type RuntimeConfig = z.output<typeof runtimeSchema>;
export type AwsConfig = z.output<typeof awsSchema>;
export type AwsConfigInput = z.input<typeof awsSchema>;

/** Typed helper for rowcast.config.ts files. */
export function defineConfig(config: RowcastConfigInput): RowcastConfigInput {
  return config;
}

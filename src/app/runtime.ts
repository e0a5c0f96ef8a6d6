import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { LogicalCaptureReader, type LogicalReaderOptions } from '../capture/logical-reader.js';
import { PostgresSourceReader } from '../capture/postgres/postgres-reader.js';
import { SnsEnvelopes } from '../delivery/sns-envelope/sns-envelopes.js';
import { type AwsConfigInput, awsSchema } from '../config/aws-schema.js';
import { type DatabaseSettings } from '../config/database-schema.js';
import { type FunctionConfig } from '../config/function-schema.js';
import { runtimeSchema, type RuntimeConfig } from '../config/runtime-schema.js';
import { type SourceConfig } from '../config/source-schema.js';
import { type HttpRoutePlugin, type HttpServer, startHttpServer } from './http/server.js';
import { FunctionWorker } from '../functions/function-worker.js';
import { ClaimChecks } from '../routing/claim-check.js';
import { activity } from '../observability/activity.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { redactUrl } from '../observability/redact.js';
import { observe } from '../observability/observe.js';
import { startTracing } from '../observability/tracing.js';
import { assertMigrated, migrate } from '../store/migrate.js';
import { createPool, type Pool, resolveDatabaseUrl } from '../store/pool.js';
import { DeliveryWorker } from '../delivery/delivery-worker.js';
import { EventRouter } from '../routing/event-router.js';
import { leftForClaims } from '../routing/fan-out.js';
import { Listener } from '../queue/listener.js';
import { applyRetention } from '../store/retention.js';

export interface StartOptions {
  databaseUrl?: string;
  runtime?: Partial<RuntimeConfig> | RuntimeConfig;
  /** The functions this process runs (their handlers are loaded here); usually the config's `functions`. */
  functions?: Record<string, FunctionConfig>;
  logger?: Logger;
  /** Apply pending migrations first (default true; safe with several processes). */
  migrate?: boolean;
  /** Routes of the HTTP server (runtime.http) besides /livez and /readyz; default: the built-in ones (topic streams). */
  httpRoutes?: readonly HttpRoutePlugin[];
  /** Internal settings of logical capture's reader (tests lower its chunk size). */
  logicalCapture?: LogicalReaderOptions;
  /**
   * The config's `aws`: ARNs (of SNS envelopes, the SNS API, functions: runtime processes get the region as
   * AWS_REGION) and the credentials of the SNS API served by the HTTP server.
   */
  aws?: AwsConfigInput;
  /** The config's `database` settings (connect timeout, keepalive, statement timeout) for every connection. */
  database?: Partial<DatabaseSettings>;
  /** The config's `sources`: this process may read their binlogs (one process per source does). */
  sources?: Record<string, SourceConfig>;
}

export interface RowcastRuntime {
  /** This process's id: lease owner and dispatcher row. */
  readonly id: string;
  readonly pool: Pool;
  /** Stops claiming, drains in-flight work within the shutdown grace, and closes every connection. */
  stop(): Promise<void>;
  /** False while starting and while draining. */
  readonly ready: boolean;
  /** Where the HTTP server listens (runtime.http.port set), e.g. http://127.0.0.1:4001. */
  readonly httpUrl?: string;
}

const HEARTBEAT_MS = 10_000;
const RETENTION_EVERY_MS = 60_000;
const SUBSCRIPTION_RELOAD_MS = 30_000;

/** Runs the router and the delivery worker in this process until stop(). Any number of processes may share a database. */
export async function startRowcast(options: StartOptions = {}): Promise<RowcastRuntime> {
  const runtime = runtimeSchema.parse(options.runtime ?? {});
  const log = options.logger ?? createLogger(runtime.logLevel);
  const url = resolveDatabaseUrl(options.databaseUrl);
  const id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const database = options.database;
  const pool = createPool(url, { max: 4, database });
  try {
    if (options.migrate ?? true) await migrate(pool);
    else await assertMigrated(pool);
  } catch (err) {
    await pool.end();
    throw err;
  }
  // Routing, claims and results, on connections that read the queues by index only (see createPool).
  const queues = createPool(url, { max: 8, queues: true, database });

  // Before the workers start, so that their first attempts already have spans; nothing is loaded when it is off.
  const tracing = await startTracing(runtime.tracing, { serviceInstanceId: id, log });
  const listener = new Listener(url, log, database);
  const worker = new DeliveryWorker(
    queues,
    {
      owner: id,
      concurrency: runtime.concurrency,
      lease: runtime.lease,
      pollInterval: runtime.pollInterval,
      allowPrivateEndpoints: runtime.allowPrivateEndpoints,
    },
    log,
  );
  const aws = awsSchema.parse(options.aws ?? {});
  const functions =
    options.functions && Object.keys(options.functions).length
      ? new FunctionWorker(
          queues,
          options.functions,
          {
            owner: id,
            concurrency: runtime.concurrency,
            lease: runtime.lease,
            pollInterval: runtime.pollInterval,
            aws,
          },
          log,
          () => worker.wake(),
        )
      : null;
  let http: HttpServer | null = null;
  const router = new EventRouter(
    queues,
    listener,
    { id, batchSize: runtime.batchSize, pollInterval: runtime.pollInterval },
    log,
    (routed) => {
      // Work routing did not lease to this process straight away is the claims'.
      if (leftForClaims(worker, routed, routed.events > 0)) worker.wake();
      if (routed.invocations > routed.claimedInvocations.length) functions?.wake();
      if (routed.events) http?.wake();
      observe.emit('events:routed', routed);
    },
  );
  router.deliveries = worker;
  if (functions) {
    functions.deliveries = worker;
    router.functions = functions;
  }
  // Logical captures: one process per database streams the slot (the others stand by); its events are routed here.
  const capture = new LogicalCaptureReader(pool, url, log, () => router.wake(), options.logicalCapture, database);
  // Sources: one process per source reads its binlog or its slot (the others stand by).
  // The MySQL reader (and its binlog client) is loaded only where a MySQL source is configured.
  const sourceReaders = await Promise.all(
    Object.entries(options.sources ?? {}).map(async ([name, source]) =>
      source.kind === 'mysql'
        ? new (await import('../capture/mysql/mysql-reader.js')).MysqlSourceReader(
            pool,
            url,
            name,
            source,
            log,
            () => router.wake(),
            database,
          )
        : new PostgresSourceReader(pool, url, name, source, log, () => router.wake(), database),
    ),
  );
  listener.on('wake', () => http?.wake());
  // Deliveries and invocations committed without routing (an SNS API Publish; rowcast.invoke, aws_lambda.invoke,
  // MySQL's lambda_async): claimed now rather than at the next poll.
  listener.on('deliveries', () => worker.wake());
  listener.on('invocations', () => functions?.wake());
  listener.on('config', () => {
    capture.configChanged();
    for (const reader of sourceReaders) reader.configChanged();
    void Promise.all([
      worker
        .reloadSubscriptions()
        .catch((err: Error) => log.error({ err: err.message }, 'reloading subscriptions failed')),
      functions?.reloadTopics().catch((err: Error) => log.error({ err: err.message }, 'reloading topics failed')),
    ]).then(() => observe.emit('config:reloaded', {}));
  });
  worker.onInvocationQueued = () => functions?.wake();
  let timers: NodeJS.Timeout[] = [];
  let detachActivity: () => Promise<void> = async () => {};
  let ready = true;

  let stopping: Promise<void> | null = null;
  const rowcast: RowcastRuntime = {
    id,
    pool,
    get ready() {
      return ready;
    },
    get httpUrl() {
      return http?.url;
    },
    stop() {
      stopping ??= (async () => {
        const stopStarted = Date.now();
        ready = false;
        log.info(
          { inFlight: worker.activeCount + (functions?.activeCount ?? 0), graceMs: runtime.shutdownGrace },
          'rowcast stopping: draining in-flight deliveries',
        );
        for (const t of timers) clearInterval(t);
        // The HTTP server stays up while draining, so that /readyz answers 503 (take me out of rotation) and
        // /livez 200 (do not kill me) until the work is done; it is closed last, before the pool its routes use.
        // Its streams read through the pool only, never through the workers, so they cannot hold the drain up.
        // Capture stops first: what it has not written stays in the slot for the next process.
        await capture.stop();
        await Promise.all(sourceReaders.map((r) => r.stop()));
        await router.stop();
        await Promise.all([worker.stop(runtime.shutdownGrace), functions?.stop(runtime.shutdownGrace)]);
        // The drained attempts' spans are exported within what is left of the grace (at least a second).
        await tracing?.stop(Math.max(1000, runtime.shutdownGrace - (Date.now() - stopStarted)));
        await detachActivity();
        await http?.close();
        await listener.stop();
        await Promise.all([pool.end(), queues.end()]);
        log.info('rowcast stopped');
      })();
      return stopping;
    },
  };
  // A failure while starting (PostgreSQL went away) stops what had started, so that the caller may try again.
  try {
    // Claim-check links point at this process's HTTP server (its address is known once it listens, below).
    worker.claimChecks = await ClaimChecks.load(pool, runtime.http.publicUrl);
    worker.snsEnvelopes = new SnsEnvelopes(pool, aws, runtime.http.publicUrl);
    listener.start();
    await worker.start();
    await functions?.start();
    await router.start();
    capture.start();
    for (const reader of sourceReaders) reader.start();
    // Rates and charts count every process's work: this one's counts go to rowcast.activity every few seconds.
    detachActivity = activity().attach(pool, log);
    timers = [
      setInterval(() => void router.heartbeat().catch(() => {}), HEARTBEAT_MS),
      setInterval(() => {
        void worker.reloadSubscriptions().catch(() => {});
        void functions?.reloadTopics().catch(() => {});
      }, SUBSCRIPTION_RELOAD_MS),
      setInterval(
        () =>
          void applyRetention(pool, runtime.retention, runtime.deadRetention)
            .then((r) => (r.events || r.messages || r.invocations) && log.info(r, 'retention: deleted expired history'))
            .catch((err: Error) => log.warn({ err: err.message }, 'retention failed; will try again')),
        RETENTION_EVERY_MS,
      ),
    ];
  } catch (err) {
    await rowcast.stop();
    throw err;
  }
  if (runtime.http.port !== undefined) {
    try {
      http = await startHttpServer({
        pool,
        log,
        settings: runtime.http,
        aws,
        sources: options.sources,
        routes: options.httpRoutes,
        isReady: async () => ({
          ready: ready && listener.connected,
          checks: {
            listener: listener.connected || 'not connected (reconnecting)',
            accepting: ready || 'draining: shutting down',
            // A MySQL source whose recorded binlog position was purged is read by no one until it is resynced.
            ...Object.fromEntries(
              Object.keys(options.sources ?? {}).flatMap((name, i) => {
                const reader = sourceReaders[i];
                return reader && 'health' in reader ? [[`source ${name}`, reader.health]] : [];
              }),
            ),
          },
        }),
      });
    } catch (err) {
      await rowcast.stop();
      throw err;
    }
    log.info(
      { url: http.url, publicUrl: http.publicUrl, auth: runtime.http.token ? 'bearer token' : 'none' },
      'http server listening',
    );
    worker.claimChecks = await ClaimChecks.load(pool, http.publicUrl);
    worker.snsEnvelopes = new SnsEnvelopes(pool, aws, http.publicUrl);
  }
  // Only now: a server that could not listen stops the process before it ever said it started.
  log.info(
    { id, database: redactUrl(url), concurrency: runtime.concurrency, pollInterval: runtime.pollInterval },
    'rowcast started',
  );
  return rowcast;
}

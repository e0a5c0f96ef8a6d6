import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type AddressInfo, isIPv4 } from 'node:net';
import { hostname } from 'node:os';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AwsConfig } from '../../config/aws-schema.js';
import type { RuntimeConfig } from '../../config/runtime-schema.js';
import type { SourceConfig } from '../../config/source-schema.js';
import { snsApiRoutes } from './sns-api-routes.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { Logger } from '../../observability/logger.js';
import { pendingMigrations } from '../../store/migrate.js';
import type { Pool } from '../../store/pool.js';
import { lambdaInvokeRoutes } from './lambda-invoke-routes.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import { adminApiRoutes } from './admin-api/admin-api-routes.js';
import { apiError, errorCodeFor } from './admin-api/api-support.js';
import { messageBodyRoutes } from './message-body.js';
import { snsEnvelopeRoutes } from './sns-envelope-routes.js';
import { topicStreamRoutes } from './topic-stream-routes.js';
import type { HttpRouteContext, HttpRoutePlugin } from './route-plugin.js';

export type { HttpRouteContext, HttpRoutePlugin } from './route-plugin.js';

export type HttpSettings = RuntimeConfig['http'];

/** A check passes with `true`; anything else (false, or a string saying why) fails it. */
export type ReadinessChecks = Record<string, boolean | string>;

/** The routes `rowcast start` serves besides /livez and /readyz; other modules add theirs here. */
export const DEFAULT_ROUTES: readonly HttpRoutePlugin[] = [
  topicStreamRoutes(),
  messageBodyRoutes(),
  dashboardRoutes(),
  adminApiRoutes(),
  snsEnvelopeRoutes(),
  snsApiRoutes(),
  lambdaInvokeRoutes(),
];

export interface HttpServerOptions {
  pool: Pool;
  log: Logger;
  settings: HttpSettings;
  aws?: AwsConfig;
  sources?: Record<string, SourceConfig>;
  /** The process's own readiness (listener connected, not draining); database and migrations are checked here. */
  isReady: () => Promise<{ ready: boolean; checks: ReadinessChecks }>;
  /** Routes to serve; default DEFAULT_ROUTES. */
  routes?: readonly HttpRoutePlugin[];
}

export interface HttpServer {
  /** Where this server listens, e.g. http://127.0.0.1:4001 (the actual port when configured with 0). */
  readonly url: string;
  /** What subscribers are told to use (runtime.http.publicUrl, or derived from host and port). */
  readonly publicUrl: string;
  readonly app: FastifyInstance;
  /** Every route served (HEAD routes fastify adds included), for docs and tests: method, path, public or behind the token. */
  readonly routes: readonly ServedRoute[];
  /** Hint that new messages may exist (streams poll at once instead of at their next interval). */
  wake(): void;
  /** Ends long-lived responses, stops accepting connections, waits for in-flight requests (then cuts them). */
  close(): Promise<void>;
}

export interface ServedRoute {
  method: string;
  url: string;
  public: boolean;
}

const CHECK_TIMEOUT_MS = 2000;
const CLOSE_TIMEOUT_MS = 5000;

/** Resolves runtime.http.token: the value itself, or the environment variable it names. */
export function resolveToken(token: HttpSettings['token']): string | undefined {
  if (token === undefined) return undefined;
  if (typeof token === 'string') return token;
  const value = process.env[token.env];
  if (!value) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `runtime.http.token: environment variable ${token.env} is not set or empty; set it, or remove runtime.http.token to serve without authentication.`,
    );
  }
  return value;
}

/** A URL for host and port: IPv6 literals in brackets; wildcard addresses replaced by this machine's name. */
export function urlFor(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Whether the server listens on loopback only (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.'));
}

/**
 * Refuses a token-less server on a non-loopback address unless the operator allowed it: anyone who reaches the
 * address could use the admin API, and rotate-secret answers with the new secret.
 */
export function assertAuthenticationConfigured(settings: HttpSettings, token: string | undefined): void {
  if (token || settings.allowUnauthenticated || isLoopbackHost(settings.host)) return;
  throw new RowcastError(
    ErrorCodes.CONFIG_INVALID,
    `runtime.http.host "${settings.host}" is not a loopback address and runtime.http.token is not set: anyone who reaches it could use the admin API (rotate-secret answers with a subscription's new secret). ` +
      'Set runtime.http.token (e.g. { env: "ROWCAST_HTTP_TOKEN" }), listen on 127.0.0.1, or, if the network in front of it authenticates, set runtime.http.allowUnauthenticated: true.',
  );
}

/**
 * Without a token, the Host names a loopback server answers to: a browser page on a name that resolves to
 * 127.0.0.1 (DNS rebinding) sends its own name, so only loopback names, publicUrl's host and allowedHosts pass.
 */
function hostChecker(settings: HttpSettings): (header: string | undefined) => boolean {
  const allowed = new Set((settings.allowedHosts ?? []).map((h) => h.toLowerCase()));
  if (settings.publicUrl) allowed.add(new URL(settings.publicUrl).hostname.toLowerCase());
  return (header) => {
    // Browsers always send Host; a client without one (HTTP/1.0) is not a page being rebound.
    if (!header) return true;
    const name = header.toLowerCase().replace(/:\d*$/, '').replace(/\.$/, '');
    return allowed.has(name) || name === 'localhost' || name.endsWith('.localhost') || isLoopbackHost(name);
  };
}

/** A constant-time comparison of a request's bearer token with the expected one (hashed first: equal lengths, no length leak). */
function bearerChecker(token: string): (header: string | undefined) => 'ok' | 'missing' | 'invalid' {
  const expected = createHash('sha256').update(token).digest();
  return (header) => {
    const match = header && /^Bearer +(\S+) *$/i.exec(header);
    if (!match) return 'missing';
    const got = createHash('sha256').update(match[1]!).digest();
    return timingSafeEqual(got, expected) ? 'ok' : 'invalid';
  };
}

/**
 * rowcast's HTTP server (fastify): /livez and /readyz, always open, and the given route plugins (topic streams by
 * default) behind the bearer token when one is configured. Fastify's logger is off; errors go to `log`.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { pool, log, settings } = options;
  if (settings.port === undefined) throw new Error('startHttpServer: runtime.http.port is not set');
  const token = resolveToken(settings.token);
  assertAuthenticationConfigured(settings, token);
  const wakes = new EventEmitter();
  wakes.setMaxListeners(0);
  let publicUrl = settings.publicUrl ?? '';
  const context: HttpRouteContext = {
    pool,
    log,
    aws: options.aws,
    sources: options.sources,
    get publicUrl() {
      return publicUrl;
    },
    onWake(fn) {
      wakes.on('wake', fn);
      return () => void wakes.off('wake', fn);
    },
  };

  const app = Fastify({ logger: false, return503OnClosing: true, forceCloseConnections: 'idle' });
  // Read when asked: onRoute hooks of plugins (registered later) may still mark a route public.
  const declared: { method: string | string[]; url: string; config?: { public?: boolean } }[] = [];
  app.addHook('onRoute', (route) => void declared.push(route));
  const routes = (): ServedRoute[] =>
    declared.flatMap((r) =>
      [r.method].flat().map((method) => ({ method, url: r.url, public: r.config?.public === true })),
    );

  if (token) {
    const check = bearerChecker(token);
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.routeOptions.config?.public) return;
      const result = check(request.headers.authorization);
      if (result === 'ok') return;
      const message =
        result === 'missing'
          ? 'This route needs the header "Authorization: Bearer <token>" (the token in runtime.http.token).'
          : 'The bearer token is not the one in runtime.http.token.';
      return reply
        .code(401)
        .header('www-authenticate', `Bearer realm="rowcast"${result === 'invalid' ? ', error="invalid_token"' : ''}`)
        .send(apiError('unauthorized', message));
    });
  }

  if (!token && isLoopbackHost(settings.host)) {
    const hostAllowed = hostChecker(settings);
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.routeOptions.config?.public || hostAllowed(request.headers.host)) return;
      const message =
        `Host "${request.headers.host}" is not a name of this server: without runtime.http.token it answers only to loopback names (localhost, 127.0.0.1, [::1]), ` +
        "runtime.http.publicUrl's host and runtime.http.allowedHosts (a guard against DNS rebinding). Add the name to runtime.http.allowedHosts, or set runtime.http.token.";
      return reply
        .code(403)
        .send(
          request.url.startsWith('/api/')
            ? { error: { code: 'forbidden_host', message } }
            : { error: 'forbidden_host', message },
        );
    });
  }

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500)
      log.error({ err: err.message, method: request.method, route: request.routeOptions.url }, 'http request failed');
    void reply
      .code(status)
      .send(
        status >= 500
          ? apiError('internal_error', 'The request failed; see the rowcast log.')
          : apiError(errorCodeFor(status), err.message),
      );
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(apiError('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`));
  });

  app.get('/livez', { config: { public: true } }, async (_request, reply) => {
    void reply.header('cache-control', 'no-store');
    return { status: 'live' };
  });

  app.get('/readyz', { config: { public: true } }, async (_request, reply) => {
    const [database, migrations, own] = await Promise.all([
      withTimeout(pool.query('SELECT 1'), CHECK_TIMEOUT_MS, 'SELECT 1').then(
        () => true as const,
        (err: Error) => `unreachable: ${err.message}`,
      ),
      withTimeout(pendingMigrations(pool), CHECK_TIMEOUT_MS, 'checking migrations').then(
        (pending) => (pending.length ? `pending: ${pending.join(', ')} (run rowcast migrate)` : (true as const)),
        (err: Error) => `unknown: ${err.message}`,
      ),
      options.isReady().catch((err: Error) => ({
        ready: false,
        checks: { process: `check failed: ${err.message}` } as ReadinessChecks,
      })),
    ]);
    const checks: ReadinessChecks = { database, migrations, ...own.checks };
    const ready = own.ready && Object.values(checks).every((v) => v === true);
    void reply.code(ready ? 200 : 503).header('cache-control', 'no-store');
    return { status: ready ? 'ready' : 'not ready', checks };
  });

  for (const plugin of options.routes ?? DEFAULT_ROUTES) {
    await app.register(async (scope) => plugin(scope, context));
  }

  try {
    await app.listen({ port: settings.port, host: settings.host });
  } catch (err) {
    await app.close().catch(() => {});
    throw new Error(`runtime.http: cannot listen on ${settings.host}:${settings.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const address = app.server.address() as AddressInfo;
  // Wildcard addresses are reached locally through loopback.
  const url = urlFor(
    settings.host === '0.0.0.0' ? '127.0.0.1' : settings.host === '::' ? '::1' : settings.host,
    address.port,
  );
  publicUrl = (settings.publicUrl ?? urlFor(settings.host, address.port)).replace(/\/+$/, '');

  let closing: Promise<void> | null = null;
  return {
    url,
    get publicUrl() {
      return publicUrl;
    },
    app,
    get routes() {
      return routes();
    },
    wake() {
      wakes.emit('wake');
    },
    close() {
      closing ??= (async () => {
        // In-flight requests get a few seconds to finish; then their connections are cut.
        const cut = setTimeout(() => app.server.closeAllConnections(), CLOSE_TIMEOUT_MS);
        try {
          await app.close();
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'closing the http server failed');
        } finally {
          clearTimeout(cut);
          wakes.removeAllListeners();
        }
      })();
      return closing;
    },
  };
}

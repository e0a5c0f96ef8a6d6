import type { FastifyInstance } from 'fastify';
import type { AwsConfig } from '../../config/aws-schema.js';
import type { SourceConfig } from '../../config/source-schema.js';
import type { Logger } from '../../observability/logger.js';
import type { Pool } from '../../store/pool.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the bearer token (the route authenticates on its own, e.g. a signed link, or is a health check). */
    public?: boolean;
  }
}

/** What route plugins get besides the fastify instance. */
export interface HttpRouteContext {
  pool: Pool;
  log: Logger;
  /** The URL subscribers reach this server at (runtime.http.publicUrl, or http://host:port); known once listening, so read it in handlers. */
  readonly publicUrl: string;
  /** The config's `aws` (ARNs, SNS API credentials), when the process was given one. */
  readonly aws?: AwsConfig;
  /** The config's `sources` (a backfill of a source's capture connects to it), when the process was given them. */
  readonly sources?: Record<string, SourceConfig>;
  /** Subscribes to "new messages may have been written" (the router routed events, a NOTIFY arrived); returns the unsubscribe function. */
  onWake(fn: () => void): () => void;
}

/**
 * A module's routes. Every route requires the bearer token (when one is set) unless it is declared with
 * `config: { public: true }`. Register clean-up with fastify's own hooks (`app.addHook('preClose', …)`): they run
 * before the server stops accepting connections, which is where long-lived responses (streams) must end.
 */
export type HttpRoutePlugin = (app: FastifyInstance, context: HttpRouteContext) => void | Promise<void>;

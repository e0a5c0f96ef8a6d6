import type { ServerResponse } from 'node:http';
import type { Logger } from '../../../observability/logger.js';
import { observe } from '../../../observability/observe.js';
import type { Pool } from '../../../store/pool.js';
import type { HttpRoutePlugin } from '../route-plugin.js';

/**
 * GET /api/tail — a live tail for people (the dashboard), as Server-Sent Events: `event: event` for captured
 * changes, `event: delivery` for delivery attempts, `: heartbeat` comments. Best effort, not a durable stream
 * (that is /topics/:name/stream): events are polled from the database (newest first, at most TAIL_BATCH per
 * poll, so under load it shows a sample); deliveries are the attempts of this process as they finish.
 */
const POLL_MS = 500;
const HEARTBEAT_MS = 15_000;
const TAIL_BATCH = 200;
/** Events committed this long after they were captured are still shown. */
const LOOKBACK = '5 seconds';
const MAX_BUFFERED = 512 * 1024;

const EVENTS_SQL = `
SELECT e.id::text, capture, schema_name || '.' || table_name AS "table", op, topic, captured_at AS at, extract(epoch FROM captured_at) * 1000 AS ms
  FROM rowcast.events e
 WHERE captured_at > $1::timestamptz - interval '${LOOKBACK}'
 ORDER BY captured_at DESC, e.id DESC LIMIT ${TAIL_BATCH}`; // e.id: the column, not the text alias ("10" < "9")

class TailHub {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private offDeliveries: (() => void) | null = null;
  private offDisabled: (() => void) | null = null;
  /** The newest capture time seen (database clock), and the ids seen within the lookback before it. */
  private cursor: Date | null = null;
  private readonly seen = new Map<string, number>();
  private polling = false;
  private starting: Promise<void> | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {}

  /** Starts polling (once, for the first client); a failure is thrown to that request and tried again by the next. */
  async start(): Promise<void> {
    this.starting ??= this.begin().catch((err: unknown) => {
      this.starting = null;
      throw err;
    });
    await this.starting;
  }

  /** Adds a client whose SSE headers were sent (after start()). */
  add(res: ServerResponse): void {
    // The client may have left already ('close' was emitted before we got here).
    if (res.destroyed || !res.socket || res.socket.destroyed) {
      if (!this.clients.size) this.end();
      return;
    }
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (!this.clients.size) this.end();
    });
    res.on('error', () => {});
    // The last client of a previous round may have stopped polling meanwhile.
    if (!this.timer) void this.start().catch(() => res.destroy());
  }

  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.end();
  }

  private async begin(): Promise<void> {
    this.cursor = (await this.pool.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
    this.seen.clear();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.heartbeat = setInterval(() => this.broadcast(': heartbeat\n\n'), HEARTBEAT_MS);
    // `event: subscription`: a subscription this process disabled (disableAfter, or HTTP 410).
    this.offDisabled = observe.on('subscription:disabled', (d) =>
      this.broadcast(
        sse('subscription', {
          subscription: d.subscription,
          state: 'disabled',
          cause: d.cause,
          reason: d.reason,
          at: new Date().toISOString(),
        }),
      ),
    );
    this.offDeliveries = observe.on('delivery:attempted', (d) =>
      this.broadcast(
        sse('delivery', {
          id: d.deliveryId,
          subscription: d.subscription,
          messageId: d.messageId,
          state: d.outcome === 'delivered' ? 'done' : d.outcome === 'dead' ? 'dead' : 'pending',
          outcome: d.outcome,
          attempt: d.attempt,
          status: d.status,
          at: new Date().toISOString(),
        }),
      ),
    );
  }

  private end(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.offDeliveries?.();
    this.offDisabled?.();
    this.offDisabled = null;
    this.timer = this.heartbeat = this.offDeliveries = null;
    this.starting = null;
  }

  private async poll(): Promise<void> {
    if (this.polling || !this.cursor) return;
    this.polling = true;
    try {
      let cursor = this.cursor;
      const { rows } = await this.pool.query(EVENTS_SQL, [cursor]);
      for (const r of rows.reverse()) {
        if (this.seen.has(r.id)) continue;
        this.seen.set(r.id, Number(r.ms));
        if (r.at > cursor) cursor = r.at;
        this.broadcast(
          sse('event', { id: r.id, capture: r.capture, table: r.table, op: r.op, topic: r.topic, at: r.at }),
        );
      }
      this.cursor = cursor;
      const horizon = cursor.getTime() - 10_000;
      for (const [id, ms] of this.seen) if (ms < horizon) this.seen.delete(id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'live tail: reading events failed; trying again');
    } finally {
      this.polling = false;
    }
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients) {
      res.write(chunk);
      // A client that does not read is cut off rather than buffered without bound.
      if (res.writableLength > MAX_BUFFERED) res.destroy();
    }
  }
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const tailRoutes: HttpRoutePlugin = (app, { pool, log }) => {
  const hub = new TailHub(pool, log);
  app.addHook('preClose', async () => hub.close());
  app.get('/tail', async (request, reply) => {
    // Before the response is taken over, so that a database failure is still an ordinary error answer.
    await hub.start();
    reply.hijack();
    const res = reply.raw;
    request.raw.socket.setNoDelay(true);
    request.raw.socket.setTimeout(0);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': live tail of events and deliveries\n\n');
    hub.add(res);
  });
};

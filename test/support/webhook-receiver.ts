import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedRequest {
  /** 1-based, in arrival order. */
  n: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Parsed body (undefined if not JSON). */
  json: any;
  /** Whether webhook-signature verified against the receiver's secret (undefined without a secret). */
  verified?: boolean;
  /**
   * The status the receiver answered with; 0 while the answer is pending (delayMs, hold), -1 reset, -2 hang, -3 the
   * connection closed before the answer.
   */
  status: number;
  at: number;
  /** When the answer was written (absent for resets, hangs and answers still pending). */
  answeredAt?: number;
  /**
   * How many requests had arrived when the answer was written: those with a greater `n` came after it (an order
   * without clock ties, for the FIFO checker).
   */
  answeredAfterRequests?: number;
  /** A hanging request: how many requests had arrived when the sender closed its connection (it gave up). */
  closedAfterRequests?: number;
}

/**
 * What to do with a request: answer with a status (and headers, after a delay, or once `hold` resolves), reset the
 * connection, or never answer.
 */
export type Reply =
  | { status: number; headers?: Record<string, string>; delayMs?: number; hold?: Promise<unknown>; body?: string }
  | 'reset'
  | 'hang';

export interface WebhookReceiverOptions {
  /** Verify webhook-signature with this secret (ReceivedRequest.verified). */
  secret?: string;
  /**
   * What to keep of each request (after reply() saw it in full); e.g. only the key and the webhook-id, so that a
   * flood of 100,000 requests does not fill the test's memory. Nothing is kept when it returns undefined (the
   * benchmark's receiver only counts).
   */
  keep?: (r: ReceivedRequest) => ReceivedRequest | undefined;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** How long an idle keep-alive connection stays open (node's default is 5 s). */
  keepAliveMs?: number;
  /** The first `reply` (it may be replaced at any time). */
  reply?: (req: ReceivedRequest) => Reply;
}

/**
 * A real HTTP server on loopback that records every request and answers as the test says, so the tests see
 * exactly what a subscriber would.
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Decides the answer to each request; default 200. */
  reply: (req: ReceivedRequest) => Reply = () => ({ status: 200 });
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly verifier?: Webhook;
  private readonly keep: (r: ReceivedRequest) => ReceivedRequest | undefined;
  url = '';
  /** Requests received and not yet answered (or their connection closed): the sender's in-flight count. */
  open = 0;
  /** The highest `open` seen. */
  peakOpen = 0;
  /** Requests received so far (each one's `n`). */
  private arrived = 0;

  /** How many requests have arrived, kept or not. */
  get count(): number {
    return this.arrived;
  }

  constructor(options: string | WebhookReceiverOptions = {}) {
    const { secret, keep, reply, keepAliveMs } = typeof options === 'string' ? { secret: options } : options;
    if (reply) this.reply = reply;
    if (secret) this.verifier = new Webhook(secret);
    this.keep = keep ?? ((r) => r);
    this.server = createServer((req, res) => {
      this.open++;
      this.peakOpen = Math.max(this.peakOpen, this.open);
      res.on('close', () => this.open--);
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        const received = {
          n: ++this.arrived,
          path: req.url ?? '/',
          headers: req.headers,
          body,
          // Parsed when first read: a receiver that only counts does not pay for it.
          get json(): any {
            const json = safeJson(body);
            Object.defineProperty(this, 'json', { value: json, enumerable: true, writable: true });
            return json;
          },
          verified: this.verify(body, req.headers),
          status: 0,
          at: Date.now(),
        } as ReceivedRequest;
        const reply = this.reply(received);
        if (reply === 'reset') {
          received.status = -1;
          this.record(received);
          req.socket.destroy();
          return;
        }
        if (reply === 'hang') {
          received.status = -2;
          const kept = this.record(received) ?? received;
          req.socket.once('close', () => (kept.closedAfterRequests = this.arrived));
          return;
        }
        // The status counts once it is written: an answer the sender gave up on (timeout, crash) was not received.
        const kept = this.record(received) ?? received;
        res.on('close', () => {
          if (kept.answeredAt === undefined) kept.status = -3;
        });
        const answer = () => {
          if (res.destroyed || res.writableEnded) {
            kept.status = -3;
            return;
          }
          kept.status = reply.status;
          kept.answeredAt = Date.now();
          kept.answeredAfterRequests = this.arrived;
          res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
        };
        if (reply.hold) void reply.hold.then(() => setTimeout(answer, reply.delayMs ?? 0));
        else if (reply.delayMs) setTimeout(answer, reply.delayMs);
        else answer();
      });
    });
    if (keepAliveMs !== undefined) {
      this.server.keepAliveTimeout = keepAliveMs;
      this.server.headersTimeout = keepAliveMs + 10_000;
    }
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(options?: string | WebhookReceiverOptions): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(options);
    const host = (typeof options === 'object' && options.host) || '127.0.0.1';
    await new Promise<void>((resolve) => r.server.listen(0, host, resolve));
    r.url = `http://${host}:${(r.server.address() as { port: number }).port}/hook`;
    return r;
  }

  /** Requests that were answered with 2xx. */
  get delivered(): ReceivedRequest[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(received: ReceivedRequest): ReceivedRequest | undefined {
    const kept = this.keep(received);
    if (kept) this.requests.push(kept);
    return kept;
  }

  private verify(body: string, headers: IncomingHttpHeaders): boolean | undefined {
    if (!this.verifier) return undefined;
    try {
      this.verifier.verify(body, headers as Record<string, string>);
      return true;
    } catch {
      return false;
    }
  }
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

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
   * flood of 100,000 requests does not fill the test's memory.
   */
  keep?: (r: ReceivedRequest) => ReceivedRequest;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
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
  private readonly keep: (r: ReceivedRequest) => ReceivedRequest;
  url = '';
  /** Requests received and not yet answered (or their connection closed): the sender's in-flight count. */
  open = 0;
  /** The highest `open` seen. */
  peakOpen = 0;
  /** Requests received so far (each one's `n`). */
  private arrived = 0;

  constructor(options: string | WebhookReceiverOptions = {}) {
    const { secret, keep, reply } = typeof options === 'string' ? { secret: options } : options;
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
        const received: ReceivedRequest = {
          n: ++this.arrived,
          path: req.url ?? '/',
          headers: req.headers,
          body,
          json: safeJson(body),
          verified: this.verify(body, req.headers),
          status: 0,
          at: Date.now(),
        };
        const reply = this.reply(received);
        if (reply === 'reset') {
          received.status = -1;
          this.requests.push(this.keep(received));
          req.socket.destroy();
          return;
        }
        if (reply === 'hang') {
          received.status = -2;
          this.requests.push(this.keep(received));
          return;
        }
        // The status counts once it is written: an answer the sender gave up on (timeout, crash) was not received.
        const kept = this.keep(received);
        this.requests.push(kept);
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

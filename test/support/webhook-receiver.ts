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
  /** The status the receiver answered with. */
  status: number;
  at: number;
}

/** What to do with a request: answer with a status (and headers, after a delay), reset the connection, or never answer. */
export type Reply = { status: number; headers?: Record<string, string>; delayMs?: number; body?: string } | 'reset' | 'hang';

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
  url = '';

  constructor(secret?: string) {
    if (secret) this.verifier = new Webhook(secret);
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        const received: ReceivedRequest = {
          n: this.requests.length + 1,
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
          this.requests.push(received);
          req.socket.destroy();
          return;
        }
        if (reply === 'hang') {
          received.status = -2;
          this.requests.push(received);
          return;
        }
        received.status = reply.status;
        this.requests.push(received);
        setTimeout(() => res.writeHead(reply.status, reply.headers).end(reply.body ?? ''), reply.delayMs ?? 0);
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(secret?: string): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(secret);
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as { port: number }).port}/hook`;
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

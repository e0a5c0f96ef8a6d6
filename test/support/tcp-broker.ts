import net from 'node:net';

/** Stand-ins for a broker at the TCP level: a port nobody listens on, one that never answers, one that restarts. */

/** A port nothing listens on (connections are refused). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Runs with a server on loopback that accepts connections and stays silent (unless onConnection answers). */
export async function withSilentServer(
  run: (port: number) => Promise<void>,
  onConnection?: (socket: net.Socket) => void,
): Promise<void> {
  const accepted = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted.add(socket);
    onConnection?.(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await run((server.address() as net.AddressInfo).port);
  } finally {
    // (Some clients leave the socket of a timed-out connect open, so the server side closes it.)
    for (const socket of accepted) socket.destroy();
    await new Promise((r) => server.close(r));
  }
}

/** A TCP relay to the real broker that can be stopped and started again on the same port: a broker restart. */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly host: string,
    private readonly upstreamPort: number,
    public port: number,
  ) {}

  static async start(host: string, port: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(host, port, 0);
    await proxy.listen();
    return proxy;
  }

  async listen(): Promise<void> {
    const server = net.createServer((client) => {
      const broker = net.connect(this.upstreamPort, this.host);
      for (const s of [client, broker]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(broker).pipe(client);
      client.on('close', () => broker.destroy());
      broker.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

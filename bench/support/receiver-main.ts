/**
 * The benchmark's webhook receiver, run as its own process so that its CPU is not the load generator's: a
 * minimal node:http server on loopback (keep-alive) that answers 200 at once and records when each request
 * arrived (recorder.ts).
 */
import { createServer } from 'node:http';
import { monotonicMs } from './clock.js';
import { recordArrival, type RecorderReply, serveRecorder } from './recorder.js';

const state = { count: 0, first: 0, last: 0, track: false, ids: [] as number[], times: [] as number[] };

// The row id of a captured reference row: the change's `after.id` (a bigint, so a JSON string); jsonb puts
// short keys first, so it leads the object. Parsed only while tracking (latency runs).
const ROW_ID = /"after"\s*:\s*\{\s*"id"\s*:\s*"?(\d+)/;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => state.track && chunks.push(c));
  req.on('end', () => {
    const at = monotonicMs();
    const m = state.track ? ROW_ID.exec(Buffer.concat(chunks).toString('utf8')) : null;
    recordArrival(state, at, m ? Number(m[1]) : undefined);
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(0, '127.0.0.1', () =>
  process.send!({ ready: true, port: (server.address() as { port: number }).port } satisfies RecorderReply),
);
serveRecorder(
  state,
  () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
);

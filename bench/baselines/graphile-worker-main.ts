/**
 * graphile-worker 0.17 as a baseline, in its own process (as rowcast runs in its own): runs the task
 * `bench_noop` — a no-op, or with `post` a signed webhook POST (the peer) — and records when each job started
 * (recorder.ts). Settings come from BENCH_GRAPHILE (JSON, see graphile-worker.ts).
 */
import { Logger, run, type Task } from 'graphile-worker';
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import { monotonicMs } from '../support/clock.js';
import { recordArrival, type RecorderReply, serveRecorder } from '../support/recorder.js';
import type { GraphileSettings } from './graphile-worker.js';

const settings = JSON.parse(process.env.BENCH_GRAPHILE ?? '{}') as GraphileSettings & { connectionString: string };
const state = { count: 0, first: 0, last: 0, track: false, ids: [] as number[], times: [] as number[] };

/** The peer's task: what a user writes with graphile-worker to send a row as a signed webhook. */
function signedPost(post: { url: string; secret: string }, connections: number): Task {
  const signer = new Webhook(post.secret);
  const dispatcher = new Agent({ connections, keepAliveTimeout: 30_000 });
  return async (payload, helpers) => {
    const body = JSON.stringify(payload);
    const id = `msg_${helpers.job.id}`;
    const now = new Date();
    const res = await request(post.url, {
      method: 'POST',
      dispatcher,
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signer.sign(id, now, body),
      },
    });
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
  };
}

const runner = await run({
  connectionString: settings.connectionString,
  concurrency: settings.concurrency,
  maxPoolSize: settings.maxPoolSize,
  noHandleSignals: true,
  logger: new Logger(() => (level, message) => level === 'error' && console.error(`graphile-worker: ${message}`)),
  preset: { worker: settings.preset ?? {} },
  taskList: {
    bench_noop: settings.post
      ? signedPost(settings.post, settings.concurrency ?? 1)
      : async (payload) => {
          recordArrival(state, monotonicMs(), (payload as { id?: number }).id);
        },
  },
});
process.send!({ ready: true } satisfies RecorderReply);
serveRecorder(state, () => runner.stop());

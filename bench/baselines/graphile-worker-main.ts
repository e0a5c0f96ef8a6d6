/**
 * graphile-worker 0.17 as a baseline, in its own process (as rowcast runs in its own): runs the no-op task
 * `bench_noop` and records when each job started (recorder.ts). Settings come from BENCH_GRAPHILE (JSON, see
 * graphile-worker.ts).
 */
import { Logger, run } from 'graphile-worker';
import { monotonicMs } from '../support/clock.js';
import { recordArrival, type RecorderReply, serveRecorder } from '../support/recorder.js';
import type { GraphileSettings } from './graphile-worker.js';

const settings = JSON.parse(process.env.BENCH_GRAPHILE ?? '{}') as GraphileSettings & { connectionString: string };
const state = { count: 0, first: 0, last: 0, track: false, ids: [] as number[], times: [] as number[] };

const runner = await run({
  connectionString: settings.connectionString,
  concurrency: settings.concurrency,
  maxPoolSize: settings.maxPoolSize,
  noHandleSignals: true,
  logger: new Logger(() => (level, message) => level === 'error' && console.error(`graphile-worker: ${message}`)),
  preset: { worker: settings.preset ?? {} },
  taskList: {
    bench_noop: async (payload) => {
      recordArrival(state, monotonicMs(), (payload as { id?: number }).id);
    },
  },
});
process.send!({ ready: true } satisfies RecorderReply);
serveRecorder(state, () => runner.stop());

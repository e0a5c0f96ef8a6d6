/**
 * The benchmark's webhook receiver — the tests' WebhookReceiver, answering 200 at once — run as its own process so
 * that its CPU is not the load generator's. It keeps no request, only when each arrived (recorder.ts), and the row
 * id of each while tracking (latency runs).
 */
import { WebhookReceiver } from '../../test/support/webhook-receiver.js';
import { monotonicMs } from './clock.js';
import { recordArrival, type RecorderReply, serveRecorder } from './recorder.js';

const state = { count: 0, first: 0, last: 0, track: false, ids: [] as number[], times: [] as number[] };

// The row id of a captured reference row: the change's `after.id` (a bigint, so a JSON string); jsonb puts
// short keys first, so it leads the object.
const ROW_ID = /"after"\s*:\s*\{\s*"id"\s*:\s*"?(\d+)/;

const receiver = await WebhookReceiver.start({
  // Connections stay open between a run's steps, as a busy subscriber's would.
  keepAliveMs: 120_000,
  keep: (r) => {
    const m = state.track ? ROW_ID.exec(r.body) : null;
    recordArrival(state, monotonicMs(), m ? Number(m[1]) : undefined);
    return undefined;
  },
});
process.send!({ ready: true, port: Number(new URL(receiver.url).port) } satisfies RecorderReply);
serveRecorder(state, () => receiver.close());

/**
 * Handler-pool probe: the nodejs thread pool alone (no database), as the function worker drives it on a backlog:
 * the no-op publisher invoked with `slots` threads; a pool that queues (setLimit) is kept 8 invocations per slot
 * ahead, as the worker does for quick handlers, one without it one per slot. Prints invocations/s and CPU µs per
 * invocation, this process's and its main thread's (Linux), measured after a warm-up.
 *   npx tsx bench/probes/handler-pool.ts [invocations] [slots]
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { HandlerPool } from '../../src/functions/handler-pool.js';
import { createLogger } from '../../src/observability/logger.js';
import { cpuSecondsOf } from './probe-db.js';

const total = Number(process.argv[2] ?? 40_000);
const slots = Number(process.argv[3] ?? 4);
const warmUp = Math.min(5_000, Math.floor(total / 5));
const pool = new HandlerPool(
  {
    functionName: 'noop',
    modulePath: new URL('./noop-publisher.ts', import.meta.url).pathname,
    exportName: 'handler',
    timeout: 3000,
    environment: {},
    memoryLimitMb: 256,
  },
  createLogger('warn'),
);
const queues = typeof (pool as { setLimit?: unknown }).setLimit === 'function';
(pool as { setLimit?: (n: number) => void }).setLimit?.(slots);
const inFlight = Number(process.env.IN_FLIGHT ?? (queues ? slots * 8 : slots));
const topics = { out: { maxMessageSize: 262_144, largeMessages: 'reject' as const } };
const signal = new AbortController().signal;
setMaxListeners(0, signal);
const mainThread = `${process.pid}/task/${process.pid}`;

let started = 0;
let done = 0;
let mark: { at: number; cpu: NodeJS.CpuUsage; main: number } | null = null;
await new Promise<void>((resolve) => {
  const next = (): void => {
    if (started >= total) return;
    started++;
    void pool
      .invoke(
        {
          id: randomUUID(),
          // The payload's text, as the function worker reads it from the invocation's row.
          payload: `{"op":"INSERT","table":"items","row":{"id":${started},"name":"name ${started}","qty":${started % 100}}}`,
          attempt: 1,
          clientContext: null,
          trace: null,
          topics,
        },
        signal,
      )
      .then((outcome) => {
        if (!outcome.ok) throw new Error(`${outcome.error.type}: ${outcome.error.message}`);
        if (++done === warmUp) mark = { at: Date.now(), cpu: process.cpuUsage(), main: cpuSecondsOf(mainThread) };
        if (done === total) resolve();
        else next();
      });
  };
  for (let i = 0; i < inFlight; i++) next();
});
const n = total - warmUp;
const m = mark!;
const cpu = process.cpuUsage(m.cpu);
console.log(
  JSON.stringify({
    queues,
    slots,
    inFlight,
    perSecond: Math.round((n * 1000) / (Date.now() - m.at)),
    cpuUsPerInvocation: Math.round((cpu.user + cpu.system) / n),
    mainThreadUsPerInvocation: Math.round(((cpuSecondsOf(mainThread) - m.main) * 1e6) / n),
  }),
);
await pool.close();

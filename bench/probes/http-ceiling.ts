/**
 * The loopback HTTP ceiling on this machine now: undici POSTs at a fixed concurrency to the probes' counting
 * receiver, with no database. Compare the drain probe against it.
 *   npx tsx bench/probes/http-ceiling.ts [requests] [concurrency]
 */
import { Agent, request } from 'undici';
import { startCountingReceiver } from './probe-db.js';

const total = Number(process.argv[2] ?? 50_000);
const concurrency = Number(process.argv[3] ?? 64);
const receiver = await startCountingReceiver();
const agent = new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
const body = JSON.stringify({ id: 1, op: 'INSERT', after: { id: 1, name: 'name 1', qty: 1 } });
let sent = 0;
const started = Date.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (sent < total) {
      sent++;
      const res = await request(receiver.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      });
      await res.body.dump();
    }
  }),
);
const seconds = (Date.now() - started) / 1000;
console.log(JSON.stringify({ requests: total, concurrency, seconds, perSecond: Math.round(total / seconds) }));
await receiver.close();
await agent.close();

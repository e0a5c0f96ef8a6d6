/**
 * The HTTP sink alone (no database): rowcast's HttpSink sending signed envelope webhooks at a fixed concurrency
 * to the probes' counting receiver, next to raw undici in the same run. The gap is the sink's own cost.
 *   npx tsx bench/probes/sink-ceiling.ts [requests] [concurrency]
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { generateSecret } from '../../src/admin/config/apply.js';
import { deliveryPolicySchema } from '../../src/config/subscription-schema.js';
import { HttpSink } from '../../src/delivery/sinks/http/http-sink.js';
import type { Subscription } from '../../src/model/sink.js';
import { startCountingReceiver } from './probe-db.js';

const total = Number(process.argv[2] ?? 30_000);
const concurrency = Number(process.argv[3] ?? 32);
const receiver = await startCountingReceiver();
const body = JSON.stringify({
  id: '1',
  op: 'INSERT',
  source: { capture: 'c', schema: 'public', table: 't' },
  key: { id: '1' },
  after: { id: '1', name: 'name 1', qty: 1 },
});

async function drive(send: () => Promise<unknown>): Promise<number> {
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        sent++;
        await send();
      }
    }),
  );
  return Math.round((total * 1000) / (performance.now() - started));
}

const agent = new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
const sink = new HttpSink({ allowPrivateEndpoints: true });
const subscription: Subscription = {
  name: 's',
  topic: 't',
  protocol: 'http',
  endpoint: receiver.url,
  secret: generateSecret(),
  state: 'active',
  deadLetterTopic: null,
  settings: {
    format: 'envelope',
    headers: {},
    deliveryPolicy: deliveryPolicySchema.parse({}),
    maxConcurrency: concurrency,
  },
};
for (let round = 0; round < 2; round++) {
  const raw = await drive(async () =>
    (
      await request(receiver.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      })
    ).body.dump(),
  );
  const viaSink = await drive(() =>
    sink.send(
      {
        deliveryId: '1',
        attempt: 1,
        subscription,
        message: {
          id: randomUUID(),
          topic: 't',
          subject: null,
          body,
          contentType: 'application/json',
          attributes: { op: 'INSERT' },
          timestamp: new Date().toISOString(),
          trace: null,
        },
      },
      new AbortController().signal,
    ),
  );
  // Raw undici again, with the sink's headers and an envelope-sized body: what HTTP itself costs.
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'rowcast/0.1 (+https://github.com/rowcast/rowcast)',
    'webhook-id': randomUUID(),
    'rowcast-subscription': 's',
    'rowcast-topic': 't',
    'rowcast-attempt': '1',
    'webhook-timestamp': '1764230000',
    'webhook-signature': 'v1,' + 'x'.repeat(44),
  };
  const envelope = JSON.stringify({
    id: randomUUID(),
    topic: 't',
    subject: null,
    attributes: { op: 'INSERT' },
    timestamp: new Date().toISOString(),
    trace: null,
    body: JSON.parse(body),
  });
  const rawLike = await drive(async () =>
    (await request(receiver.url, { method: 'POST', body: envelope, headers, dispatcher: agent })).body.dump(),
  );
  console.log(
    JSON.stringify({
      concurrency,
      rawUndiciPerSecond: raw,
      rawWithSinkHeadersPerSecond: rawLike,
      httpSinkPerSecond: viaSink,
    }),
  );
}
await receiver.close();
await agent.close();
await sink.close();

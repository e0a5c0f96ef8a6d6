/**
 * The soak's subscriber, in a process of its own (scripts/run-soak.ts forks it): its event loop serves only the
 * webhooks, so neither the soak's writers nor its checks (which walk every request) make an answer late — an answer
 * later than the delivery policy's timeout is a failed attempt, and those retries had snowballed. Over IPC it
 * reports how many distinct changes each receiver has answered 2xx (cheap, every few seconds) and, on request,
 * every request it kept, for the full check.
 */
import { type ReceivedRequest, WebhookReceiver } from '../test/support/webhook-receiver.js';

const FAIL_RATE = Number(process.env.SOAK_FAIL_RATE ?? '0.05');

/** Only what the checker needs of each request: 500,000 whole requests would not fit in memory. */
const keep = (r: ReceivedRequest): ReceivedRequest => ({
  n: r.n,
  path: '',
  headers: { 'webhook-id': r.headers['webhook-id'] },
  body: '',
  json: { body: { key: r.json?.body?.key, after: { id: r.json?.body?.after?.id, v: r.json?.body?.after?.v } } },
  status: r.status,
  at: r.at,
});

const receivers = { plain: await WebhookReceiver.start({ keep }), fifo: await WebhookReceiver.start({ keep }) };
const answered = { plain: new Set<string>(), fifo: new Set<string>() };
for (const [name, receiver] of Object.entries(receivers) as [keyof typeof receivers, WebhookReceiver][]) {
  receiver.reply = (r) => {
    const ok = Math.random() >= FAIL_RATE;
    if (ok) answered[name].add(`${r.json?.body?.key?.id}:${r.json?.body?.after?.v}`);
    return { status: ok ? 200 : 500 };
  };
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'counts') process.send!({ type: 'counts', plain: answered.plain.size, fifo: answered.fifo.size });
  else if (m.type === 'requests')
    process.send!({ type: 'requests', plain: receivers.plain.requests, fifo: receivers.fifo.requests });
  else if (m.type === 'close')
    void Promise.all(Object.values(receivers).map((r) => r.close())).then(() => process.exit(0));
});
process.send!({ type: 'ready', plain: receivers.plain.url, fifo: receivers.fifo.url });

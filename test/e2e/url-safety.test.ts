/**
 * Webhook URL safety: with runtime.allowPrivateEndpoints off (the default), webhooks to loopback, private,
 * link-local, unspecified and other internal addresses are refused at connect time — after DNS resolution, whatever
 * the URL's spelling — and the attempt fails (retryably) with an error naming the address and the flag. With the
 * flag on, the same loopback receiver gets its deliveries. Only loopback addresses are ever connected to here.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { getDelivery, type RuntimeConfig, type RowcastRuntime } from '../../src/index.js';
import { classifyAddress } from '../../src/delivery/sinks/http/address-policy.js';
import { HttpSink } from '../../src/delivery/sinks/http/http-sink.js';
import type { DeliveryAttempt } from '../../src/model/sink.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { patient } from '../support/patience.js';

const REFUSAL =
  /^refused to connect to (127\.0\.0\.1|::1|0\.0\.0\.0) \((loopback|unspecified)[^)]*\): webhook endpoints must be public addresses; set runtime\.allowPrivateEndpoints: true to allow internal ones/;

/** A real HTTP server on 127.0.0.1 that counts the connections and requests it gets. */
class Receiver {
  connections = 0;
  requests: string[] = [];
  readonly server = http.createServer((req, res) => {
    this.requests.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  port = 0;

  async start(): Promise<this> {
    this.server.on('connection', () => this.connections++);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('address classification', () => {
  const cases: Array<[string, boolean, RegExp]> = [
    ['127.0.0.1', false, /^loopback$/],
    ['127.255.1.2', false, /^loopback$/],
    ['::1', false, /^loopback$/],
    ['10.1.2.3', false, /^private/],
    ['172.16.0.1', false, /^private/],
    ['172.31.255.255', false, /^private/],
    ['192.168.1.1', false, /^private/],
    ['100.64.0.1', false, /^carrier-grade NAT$/],
    ['100.127.255.254', false, /^carrier-grade NAT$/],
    ['fc00::1', false, /^unique local/],
    ['fd12:3456::1', false, /^unique local/],
    ['169.254.1.1', false, /^link-local$/],
    ['169.254.169.254', false, /^link-local \(cloud metadata\)$/],
    ['fe80::1', false, /^link-local$/],
    ['0.0.0.0', false, /^unspecified$/],
    ['::', false, /^unspecified$/],
    ['224.0.0.1', false, /^multicast$/],
    ['239.255.255.250', false, /^multicast$/],
    ['ff02::1', false, /^multicast$/],
    ['255.255.255.255', false, /^broadcast$/],
    ['192.0.2.1', false, /^reserved$/],
    ['240.0.0.1', false, /^reserved$/],
    ['2001:db8::1', false, /./],
    ['::ffff:127.0.0.1', false, /^loopback$/],
    ['::ffff:7f00:1', false, /^loopback$/],
    ['::ffff:169.254.169.254', false, /cloud metadata/],
    ['64:ff9b::a9fe:a9fe', false, /NAT64 of 169\.254\.169\.254/],
    ['2002:7f00:1::1', false, /^6to4$/],
    ['93.184.216.34', true, /^public$/],
    ['8.8.8.8', true, /^public$/],
    ['2606:2800:220:1:248:1893:25c8:1946', true, /^public$/],
    ['::ffff:93.184.216.34', true, /^public$/],
    ['not-an-address', false, /^not an IP address$/],
  ];
  for (const [address, isPublic, range] of cases) {
    test(`${address}: ${isPublic ? 'public' : 'refused'}`, () => {
      const verdict = classifyAddress(address);
      assert.equal(verdict.public, isPublic, JSON.stringify(verdict));
      assert.match(verdict.range, range, JSON.stringify(verdict));
    });
  }

  test('IPv4-mapped IPv6 addresses are judged (and named) as the IPv4 address they stand for', () => {
    assert.equal(classifyAddress('[::ffff:7f00:1]').address, '127.0.0.1');
  });
});

describe('delivery to internal addresses', () => {
  let db: TestDatabase;
  let receiver: Receiver;
  let rowcast: RowcastRuntime | undefined;

  const tricky = (port: number) => ({
    decimal: `http://2130706433:${port}/decimal`,
    hex: `http://0x7f.1:${port}/hex`,
    octal: `http://0177.0.0.1:${port}/octal`,
    'mapped-hex': `http://[::ffff:7f00:1]:${port}/mapped-hex`,
    'mapped-dotted': `http://[::ffff:127.0.0.1]:${port}/mapped-dotted`,
    unspecified: `http://0.0.0.0:${port}/unspecified`,
    short: `http://127.1:${port}/short`,
    localhost: `http://localhost:${port}/localhost`,
    plain: `http://127.0.0.1:${port}/plain`,
  });

  const run = async (runtime: Partial<RuntimeConfig>) => {
    await rowcast?.stop();
    rowcast = await startTestRowcast(db.url, runtime);
  };

  before(async () => {
    db = await createTestDatabase();
    receiver = await new Receiver().start();
    await db.pool.query('CREATE TABLE refused (id int PRIMARY KEY)');
    await db.pool.query('CREATE TABLE allowed (id int PRIMARY KEY)');
    const policy = { maxAttempts: 1, timeout: '5s' };
    // maxConcurrency is kept low so that all 11 subscriptions fit in the process's runtime.concurrency (256) at once.
    const settings = { deliveryPolicy: policy, maxConcurrency: 2 };
    await applyConfig(db.pool, {
      topics: { refused: {}, allowed: {} },
      captures: {
        refused: { table: 'refused', topic: 'refused', operations: ['INSERT'] },
        allowed: { table: 'allowed', topic: 'allowed', operations: ['INSERT'] },
      },
      subscriptions: {
        ...Object.fromEntries(
          Object.entries(tricky(receiver.port)).map(([name, endpoint]) => [
            name,
            { topic: 'refused', protocol: 'http' as const, endpoint, ...settings },
          ]),
        ),
        loopback: {
          topic: 'allowed',
          protocol: 'http',
          endpoint: `http://127.0.0.1:${receiver.port}/allowed`,
          ...settings,
        },
        'loopback-by-name': {
          topic: 'allowed',
          protocol: 'http',
          endpoint: `http://localhost:${receiver.port}/allowed-by-name`,
          ...settings,
        },
      },
    });
  });

  after(async () => {
    await rowcast?.stop();
    await receiver?.close();
    await db?.drop();
  });

  test(
    'flag off (the default): every spelling of an internal address fails its attempt with a clear error; nothing reaches the receiver',
    { timeout: patient(60_000) },
    async () => {
      await run({ allowPrivateEndpoints: false });
      await db.pool.query('INSERT INTO refused VALUES (1)');
      const names = Object.keys(tricky(receiver.port));
      let last: unknown;
      const rows = await eventually(async () => {
        const { rows } = await db.pool.query<{
          subscription: string;
          state: string;
          attempts: number;
          last_error: string | null;
        }>(
          `SELECT subscription, state, attempts, last_error FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id WHERE m.topic = 'refused' ORDER BY subscription`,
        );
        last = rows;
        return rows.length === names.length && rows.every((r) => r.state === 'dead') && rows;
      }, 'every refused delivery to have had its attempt').catch((err: Error) => {
        throw new Error(`${err.message}; deliveries: ${JSON.stringify(last)}`);
      });
      for (const row of rows) {
        assert.equal(row.attempts, 1, row.subscription);
        assert.match(row.last_error ?? '', REFUSAL, `${row.subscription}: ${row.last_error}`);
      }
      assert.match(rows.find((r) => r.subscription === 'localhost')!.last_error!, /resolved from localhost/);
      assert.equal(receiver.connections, 0, 'no connection reached the receiver');
      assert.deepEqual(receiver.requests, []);
    },
  );

  test('a refused attempt is a retryable failure (DNS may change)', async () => {
    const sink = new HttpSink();
    try {
      for (const endpoint of Object.values(tricky(receiver.port))) {
        const outcome = await sink.send(attemptTo(endpoint), new AbortController().signal);
        assert.equal(outcome.kind, 'retry', endpoint);
        assert.match((outcome as { error: string }).error, REFUSAL, endpoint);
      }
    } finally {
      await sink.close();
    }
    assert.equal(receiver.connections, 0);
  });

  test(
    'flag on: the loopback receiver gets its deliveries, by address and by name',
    { timeout: patient(60_000) },
    async () => {
      await run({ allowPrivateEndpoints: true });
      await db.pool.query('INSERT INTO allowed VALUES (1)');
      await eventually(() => receiver.requests.length === 2, 'both deliveries to the loopback receiver');
      assert.deepEqual([...receiver.requests].sort(), ['/allowed', '/allowed-by-name']);
      // Both deliveries of the topic's one message (in its log: a message row, or a segment's entry), read as the
      // admin API reads them (rows, or their cursors).
      const { rows } = await db.pool.query<{ seq: string }>(
        `SELECT seq::text FROM rowcast.log_messages('allowed', 0, 9223372036854775807)`,
      );
      assert.equal(rows.length, 1);
      await eventually(async () => {
        const deliveries = await Promise.all(
          ['loopback', 'loopback-by-name'].map((name) => getDelivery(db.pool, `${name}@${rows[0]!.seq}`)),
        );
        return deliveries.every((d) => d.state === 'done');
      }, 'both deliveries done');
    },
  );
});

function attemptTo(endpoint: string): DeliveryAttempt {
  return {
    deliveryId: '1',
    attempt: 1,
    subscription: {
      name: 'url-safety',
      topic: 't',
      protocol: 'http',
      endpoint,
      settings: {
        format: 'envelope',
        headers: {},
        maxConcurrency: 1,
        deliveryPolicy: { maxAttempts: 1, minDelay: 1000, maxDelay: 1000, timeout: 5000, maxRetryAfter: 1000 },
      },
      secret: null,
      state: 'active',
      deadLetterTopic: null,
    },
    message: {
      id: randomUUID(),
      topic: 't',
      subject: null,
      body: '{}',
      contentType: 'application/json',
      attributes: {},
      timestamp: new Date().toISOString(),
      trace: null,
    },
  };
}

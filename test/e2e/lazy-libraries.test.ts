import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { RowcastConfigInput } from '../../src/index.js';
import { BROKERS, runId } from '../support/brokers.js';
import { applyConfig, createTestDatabase, eventually, type TestDatabase } from '../support/database.js';
import { patient } from '../support/patience.js';
import { RowcastProcess } from '../support/rowcast-process.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// A process holds only the client libraries of what it delivers to and reads from: the broker and mail sinks, the
// MySQL binlog reader, the replication stream and the AWS signer are loaded at first use (together about 15 MB
// of an idle process's RSS).

const MODULE_LOADS = fileURLToPath(new URL('../support/module-loads.mjs', import.meta.url));
const LAZY = [
  'amqplib',
  'mqtt',
  'ioredis',
  '@nats-io',
  'nodemailer',
  '@vlasky/zongji',
  'mysql2',
  'pg-logical-replication',
  '@smithy',
];

let db: TestDatabase;
let receiver: WebhookReceiver;
let redis: Redis;
let rowcast: RowcastProcess | undefined;
const stream = `rowcast-lazy-${runId()}`;

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  redis = new Redis(BROKERS.redis);
  await db.pool.query(`CREATE TABLE parcels (id int PRIMARY KEY, note text)`);
});

after(async () => {
  rowcast?.kill('SIGTERM');
  await rowcast?.exit(10_000).catch(() => {});
  await redis?.del(stream).catch(() => {});
  redis?.disconnect();
  await receiver?.close();
  await db?.drop();
});

/** The packages of node_modules the process has loaded so far, by name. */
function loadedPackages(output: string): Set<string> {
  const names = [...output.matchAll(/^module-load .*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)].map((m) => m[1]!);
  return new Set(names);
}

function lazyLoaded(output: string): string[] {
  const loaded = [...loadedPackages(output)];
  return LAZY.filter((lib) => loaded.some((name) => name === lib || name.startsWith(`${lib}/`)));
}

test(
  'a process loads a broker client at its first delivery there, and never the libraries it does not use',
  { timeout: patient(90_000) },
  async () => {
    const config: RowcastConfigInput = {
      topics: { parcels: {} },
      captures: { parcels: { table: 'parcels', topic: 'parcels' } },
      subscriptions: {
        hook: { topic: 'parcels', protocol: 'http', endpoint: receiver.url },
        stream: { topic: 'parcels', protocol: 'redis', options: { url: BROKERS.redis, stream } },
      },
      runtime: { pollInterval: '200ms', allowPrivateEndpoints: true },
    };
    await applyConfig(db.pool, config);
    rowcast = RowcastProcess.startWith(config, db.url, { nodeArgs: ['--import', MODULE_LOADS] });
    await rowcast.ready(db.pool);
    // The recorder works: what every process needs is there.
    assert.ok(loadedPackages(rowcast.output).has('pg'), `pg among the loads:\n${rowcast.output.slice(0, 2000)}`);
    assert.deepEqual(lazyLoaded(rowcast.output), [], 'started, with nothing delivered yet');

    await db.pool.query(`INSERT INTO parcels VALUES (1, 'first')`);
    await eventually(() => receiver.delivered.length === 1, 'the webhook delivery');
    await eventually(async () => (await redis.xlen(stream)) === 1, 'the Redis stream entry');
    assert.deepEqual(lazyLoaded(rowcast.output), ['ioredis'], 'after a delivery to Redis, its client only');
  },
);

import assert from 'node:assert/strict';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { assertDeliveries } from './checker.js';
import { eventually } from './database.js';
import { type FaultScenario, reportResult, sleep, stopChild } from './fault-harness.js';
import type { ReceivedRequest } from './webhook-receiver.js';

const KEYS = 20;
const WRITERS = 4;
const UPDATES = 30;

/** One version of one row: the event's key. */
const versionOf = (r: ReceivedRequest) =>
  r.json?.body?.key?.id === undefined ? undefined : `${r.json.body.key.id}:${r.json.body.after?.v}`;

export interface FifoOrderOptions {
  /** The result's name in the fault report. */
  name: string;
  /** Settings of the `ordered` subscription beyond the scenario's (e.g. `cursor: true`). */
  subscription?: Record<string, unknown>;
  /** How much leased work the process with this pid holds now: the victim is killed once it holds some. */
  heldBy: (pool: Pool, pid: number) => Promise<number>;
}

/**
 * The scenario of faults 11 and 26: a FIFO topic's rows updated from several connections while two processes
 * deliver them; one is SIGKILLed while it holds leased work, the survivor's connections are terminated, a fifth of
 * the attempts fail with 503. Every version of every row must arrive, strictly in commit order per row.
 */
export async function fifoOrderScenario(scenario: FaultScenario, options: FifoOrderOptions): Promise<void> {
  const db = await scenario.createDatabase();
  // Some requests fail at first, some take a while: the next version of a row must wait for the previous one.
  const receiver = await scenario.addReceiver();
  receiver.reply = () =>
    Math.random() < 0.2 ? { status: 503 } : { status: 200, delayMs: Math.floor(Math.random() * 50) };
  await db.pool.query('CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)');
  const config: RowcastConfigInput = {
    topics: { counters: { fifo: true } },
    captures: { counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] } },
    subscriptions: {
      ordered: {
        topic: 'counters',
        protocol: 'http',
        endpoint: receiver.url,
        maxConcurrency: 16,
        deliveryPolicy: { maxAttempts: 100, minDelay: '20ms', maxDelay: '100ms', timeout: '2s' },
        ...options.subscription,
      },
    },
    runtime: { lease: '1500ms', pollInterval: '300ms', shutdownGrace: '1s' },
  };
  await scenario.useConfig(db.pool, config);
  const first = await scenario.spawn(db.pool, db.url);
  const second = await scenario.spawn(db.pool, db.url);

  await db.pool.query('INSERT INTO counters SELECT g, 0 FROM generate_series(1, $1::int) g', [KEYS]);
  // Writers on several connections interleave their commits across rows; each row's versions 0, 1, 2, … are
  // its commit order (row locks serialise its writers).
  const writing = Promise.all(
    Array.from({ length: WRITERS }, async (_w, w) => {
      for (let u = 0; u < UPDATES; u++) {
        for (let id = 1 + w; id <= KEYS; id += WRITERS)
          await db.pool.query('UPDATE counters SET v = v + 1 WHERE id = $1', [id]);
        await sleep(20);
      }
    }),
  );
  // Killed while it holds leases: their groups must wait for the leases to expire, not skip ahead.
  await sleep(500);
  const leased = await eventually(() => options.heldBy(db.pool, first.pid), 'the first process to hold leases', 30_000);
  first.kill('SIGKILL');
  const killedAt = Date.now();
  await first.exit(10_000);
  await sleep(1000);
  const { rows: terminated } = await db.pool.query<{ n: number }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name IN ('rowcast', 'rowcast listener') AND pid <> pg_backend_pid()`,
  );
  assert.ok(terminated[0]!.n > 0, `the survivor's connections were terminated (${terminated[0]!.n})`);
  await writing;

  const committed: string[] = [];
  for (let id = 1; id <= KEYS; id++) for (let v = 0; v <= UPDATES; v++) committed.push(`${id}:${v}`);
  const order = {
    groupOf: (r: ReceivedRequest) => String(r.json.body.key.id),
    seqOf: (r: ReceivedRequest) => Number(r.json.body.after.v),
  };
  await eventually(
    () => assertDeliveries({ committed, requests: receiver.requests, keyOf: versionOf }),
    'every version of every row to be delivered',
    120_000,
  );
  const caughtUpMs = Date.now() - killedAt;
  await sleep(1500); // late duplicates would show now
  const result = assertDeliveries({ committed, requests: receiver.requests, keyOf: versionOf, order });
  assert.equal(result.orderViolations.length, 0);
  assert.ok(second.running, 'the survivor kept going');
  assert.deepEqual(await stopChild(second), { code: 0, signal: null });

  reportResult(options.name, {
    keys: KEYS,
    versionsPerKey: UPDATES + 1,
    victimLeasedAtKill: leased,
    connectionsTerminated: terminated[0]!.n,
    committed: result.committed,
    delivered: result.delivered,
    duplicates: result.duplicates,
    requests: result.requests,
    orderViolations: result.orderViolations.length,
    allDeliveredAfterKillMs: caughtUpMs,
  });
}

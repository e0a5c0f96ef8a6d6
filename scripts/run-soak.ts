/**
 * npm run test:soak: a long run under every fault at once (issue 14 §8), apart from `npm test` and the fault suite
 * (not in CI). Three rowcast processes, killed with SIGKILL at random moments and started again, two `-m immediate`
 * PostgreSQL restarts, a subscriber that answers 500 to one request in twenty, and writers that commit `--events`
 * changes spread over `--minutes`: half row inserts into a plain topic, half updates of 1,000 rows into a FIFO topic.
 * Then it waits for everything to drain and runs the fault suite's checker on both subscriptions (nothing missing,
 * copies only under the same webhook-id, per-key order on the FIFO topic). Prints `SOAK-RESULT {json}`; exit code 1
 * if the check fails.
 *   npm run test:soak                                    10 minutes, 500,000 events
 *   npm run test:soak -- --minutes 2 --events 50000      a quick try
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { RowcastConfigInput } from '../src/config/schema.js';
import { migrate } from '../src/store/migrate.js';
import { createPool } from '../src/store/pool.js';
import { checkDeliveries, type CheckResult } from '../test/support/checker.js';
import { applyConfig } from '../test/support/database.js';
import { databaseUrlFor } from '../test/support/database-url.js';
import { sleep, startRestartablePostgres } from '../test/support/fault-harness.js';
import { RowcastProcess, writeConfigFile } from '../test/support/rowcast-process.js';
import type { ReceivedRequest } from '../test/support/webhook-receiver.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    events: { type: 'string', default: '500000' },
    processes: { type: 'string', default: '3' },
    'fail-rate': { type: 'string', default: '0.05' },
  },
});
const positive = (name: string, value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`--${name} ${value}: expected a positive number, e.g. --${name} 2`);
  return n;
};
const MINUTES = positive('minutes', values.minutes);
const EVENTS = Math.round(positive('events', values.events));
const PROCESSES = Math.round(positive('processes', values.processes));
const FAIL_RATE = Number(values['fail-rate']);
if (!(FAIL_RATE >= 0 && FAIL_RATE < 1))
  throw new Error(`--fail-rate ${values['fail-rate']}: expected a share from 0 to below 1, e.g. 0.05`);
const KEYS = 1000;
const WRITE_MS = MINUTES * 60_000;
const DRAIN_MS = Math.max(5 * 60_000, WRITE_MS);

const log = (message: string) => console.log(`[soak +${Math.round((Date.now() - startedAt) / 1000)}s] ${message}`);
const startedAt = Date.now();

/** The subscriber runs in a process of its own (scripts/soak-receiver.ts): asks it something over IPC. */
function ask<T>(receiver: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: { type: string } & T) => {
      if (m.type !== type) return;
      receiver.off('message', onMessage);
      resolve(m);
    };
    receiver.on('message', onMessage);
    receiver.send({ type });
  });
}

const server = await startRestartablePostgres();
const children: RowcastProcess[] = [];
let receiver: ChildProcess | undefined;
let configFile: ReturnType<typeof writeConfigFile> | undefined;
// eslint-disable-next-line no-useless-assignment -- the exit code if the soak throws before it sets one
let exitCode = 1;
try {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('CREATE DATABASE rowcast_soak');
  await admin.end();
  const url = databaseUrlFor(server.url, 'rowcast_soak');
  const pool = createPool(url, { max: 4, applicationName: 'rowcast soak', database: { statementTimeout: 0 } });
  await migrate(pool);
  await pool.query('CREATE TABLE items (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  await pool.query('CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)');

  receiver = fork(fileURLToPath(new URL('soak-receiver.ts', import.meta.url)), [], {
    execArgv: ['--import', import.meta.resolve('tsx')],
    env: { ...process.env, SOAK_FAIL_RATE: String(FAIL_RATE) },
  });
  const [urls] = (await once(receiver, 'message')) as [{ plain: string; fifo: string }];
  const plain = { url: urls.plain };
  const fifo = { url: urls.fifo };
  const answered = () => ask<{ plain: number; fifo: number }>(receiver!, 'counts');
  const policy = { maxAttempts: 100, minDelay: '50ms', maxDelay: '1s', timeout: '2s' };
  const config: RowcastConfigInput = {
    topics: { items: {}, counters: { fifo: true } },
    captures: {
      items: { table: 'items', topic: 'items' },
      counters: { table: 'counters', topic: 'counters', operations: ['INSERT', 'UPDATE'] },
    },
    subscriptions: {
      plain: { topic: 'items', protocol: 'http', endpoint: plain.url, maxConcurrency: 32, deliveryPolicy: policy },
      ordered: { topic: 'counters', protocol: 'http', endpoint: fifo.url, maxConcurrency: 32, deliveryPolicy: policy },
    },
    runtime: { lease: '3s', pollInterval: '500ms', shutdownGrace: '2s' },
  } as RowcastConfigInput;
  await applyConfig(pool, config);
  configFile = writeConfigFile(config);
  const spawn = () => {
    const child = RowcastProcess.start(configFile!.file, url);
    children.push(child);
    return child;
  };
  // A process that exits by itself (e.g. PostgreSQL went away while it started) is replaced, so that the run keeps
  // PROCESSES processes; how often this happened is in the figures.
  let selfExits = 0;
  const replaced = new Set<RowcastProcess>();
  for (let i = 0; i < PROCESSES; i++) await spawn().ready(pool, 90_000);
  await pool.query('INSERT INTO counters SELECT g, 0 FROM generate_series(1, $1::int) g', [KEYS]);
  log(`${PROCESSES} processes up; writing ${EVENTS} events over ${MINUTES} min (${KEYS} FIFO versions already)`);
  const writeStart = Date.now();
  const elapsed = () => Date.now() - writeStart;

  // Writers: every 200 ms, as many changes as keep the total on a straight line to EVENTS at WRITE_MS, half into each
  // topic; a batch that fails (PostgreSQL restarting) is simply not counted, and what committed is read back at the end.
  let written = KEYS;
  let writeFailures = 0;
  let nextId = 1;
  let nextKey = 1;
  const writing = (async () => {
    const writer = new pg.Pool({
      connectionString: url,
      max: 2,
      application_name: 'rowcast soak writer',
      connectionTimeoutMillis: 5000,
    });
    writer.on('error', () => {});
    // Behind schedule (a slow machine), it goes on writing for up to twice the time, then stops short of EVENTS.
    for (let tick = 0; tick < 1_000_000 && elapsed() < WRITE_MS * 2 && written < EVENTS; tick++) {
      const due = Math.min(EVENTS, Math.ceil((EVENTS * elapsed()) / WRITE_MS)) - written;
      const inserts = Math.min(5000, Math.ceil(due / 2));
      const updates = Math.min(KEYS, due - inserts);
      try {
        if (inserts > 0) {
          await writer.query('INSERT INTO items (id) SELECT generate_series($1::int, $2::int)', [
            nextId,
            nextId + inserts - 1,
          ]);
          nextId += inserts;
          written += inserts;
        }
        if (updates > 0) {
          // Keys nextKey … nextKey + updates - 1, wrapping: each key's versions follow its commit order.
          const keys = Array.from({ length: updates }, (_, i) => ((nextKey - 1 + i) % KEYS) + 1);
          await writer.query('UPDATE counters SET v = v + 1 WHERE id = ANY($1::int[])', [keys]);
          nextKey = ((nextKey - 1 + updates) % KEYS) + 1;
          written += updates;
        }
      } catch {
        writeFailures++;
      }
      await sleep(200);
    }
    await writer.end();
  })();

  // Faults: two PostgreSQL restarts at a third and two thirds, and SIGKILLs at random moments (each victim replaced).
  const restarts: number[] = [];
  const kills: { pid: number; atS: number }[] = [];
  const faults = (async () => {
    const restartAt = [WRITE_MS / 3, (2 * WRITE_MS) / 3];
    let nextKill = Date.now() + WRITE_MS / 10 + Math.random() * (WRITE_MS / 5);
    for (let i = 0; i < 100_000 && elapsed() < WRITE_MS; i++) {
      if (restartAt.length && elapsed() >= restartAt[0]!) {
        restartAt.shift();
        const { downMs } = await server.restartImmediate();
        restarts.push(downMs);
        log(`PostgreSQL restarted (-m immediate), down ${downMs} ms`);
      }
      if (Date.now() >= nextKill) {
        const running = children.filter((c) => c.running);
        const victim = running[Math.floor(Math.random() * running.length)];
        if (victim) {
          kills.push({ pid: victim.pid, atS: Math.round((Date.now() - startedAt) / 1000) });
          victim.kill('SIGKILL');
          await victim.exit(10_000);
          const replacement = spawn();
          log(`SIGKILLed pid ${victim.pid}; started pid ${replacement.pid}`);
        }
        nextKill = Date.now() + WRITE_MS / 10 + Math.random() * (WRITE_MS / 5);
      }
      for (const c of children.filter((c) => !c.running && !replaced.has(c))) {
        replaced.add(c);
        if (kills.some((k) => k.pid === c.pid)) continue;
        selfExits++;
        const replacement = spawn();
        log(
          `pid ${c.pid} exited by itself (${c.output.trim().split('\n').at(-1)?.slice(0, 300)}); started pid ${replacement.pid}`,
        );
      }
      await sleep(250);
    }
  })();
  const progress = setInterval(
    () => void answered().then((a) => log(`written ${written}; delivered plain ${a.plain}, fifo ${a.fifo}`)),
    30_000,
  );
  await Promise.all([writing, faults]);
  const writtenAt = Date.now();
  log(`writing done: ${written} changes (${writeFailures} failed batches); draining`);

  // What committed, read back: every items row, and versions 0 … v of every counter.
  const ids = (await pool.query<{ id: number }>('SELECT id FROM items')).rows.map((r) => r.id);
  const versions = (await pool.query<{ id: number; v: number }>('SELECT id, v FROM counters')).rows.flatMap((r) =>
    Array.from({ length: r.v + 1 }, (_, v) => `${r.id}:${v}`),
  );
  const versionOf = (r: ReceivedRequest) =>
    r.json?.body?.key?.id === undefined ? undefined : `${r.json.body.key.id}:${r.json.body.after?.v}`;
  const order = {
    groupOf: (r: ReceivedRequest) => String(r.json.body.key.id),
    seqOf: (r: ReceivedRequest) => Number(r.json.body.after.v),
  };
  const check = async (): Promise<[CheckResult, CheckResult]> => {
    const requests = await ask<{ plain: ReceivedRequest[]; fifo: ReceivedRequest[] }>(receiver!, 'requests');
    return [
      checkDeliveries({ committed: ids, requests: requests.plain }),
      checkDeliveries({ committed: versions, requests: requests.fifo, keyOf: versionOf, order }),
    ];
  };
  // Drained once the receiver has answered 2xx to as many distinct changes as committed (a cheap count); the full
  // check runs after that.
  for (let i = 0; i < 100_000 && Date.now() - writtenAt < DRAIN_MS; i++) {
    const a = await answered();
    if (a.plain >= ids.length && a.fifo >= versions.length) break;
    await sleep(1000);
  }
  const drainedMs = Date.now() - writtenAt;
  clearInterval(progress);
  await sleep(3000); // late copies would show now
  const [plainResult, fifoResult] = await check();
  const stops = await Promise.all(
    children
      .filter((c) => c.running)
      .map(async (c) => {
        c.kill('SIGTERM');
        return c.exit(30_000).catch(() => ({ code: null, signal: 'hung' as const }));
      }),
  );
  const cleanStops = stops.filter((s) => s.code === 0).length;
  const summary = (r: CheckResult) => ({
    committed: r.committed,
    delivered: r.delivered,
    missing: r.missing.length,
    unexpected: r.unexpected.length,
    duplicatesSameId: r.duplicates,
    mixedIds: r.mixedIds.length,
    orderViolations: r.orderViolations.length,
    requests: r.requests,
    failedAnswers: r.requests - r.okRequests,
  });
  const figures = {
    minutes: MINUTES,
    eventsTarget: EVENTS,
    processes: PROCESSES,
    failRate: FAIL_RATE,
    changesCommitted: plainResult.committed + fifoResult.committed,
    writeBatchesFailed: writeFailures,
    postgresRestarts: restarts.length,
    postgresDownMs: restarts,
    sigkills: kills.length,
    selfExits,
    // How often a process handed claimed deliveries back unstarted (claims slower than the lease's budget).
    handedBackWarnings: children.map((c) => (c.output.match(/handed back unstarted/g) ?? []).length),
    // The slowest claim each of those warnings reported (ms).
    slowestClaimMs: children.map((c) =>
      Math.max(0, ...[...c.output.matchAll(/"lastClaimMs":(\d+)/g)].map((m) => Number(m[1]))),
    ),
    killedAtS: kills.map((k) => k.atS),
    drainedAfterWritingMs: drainedMs,
    totalS: Math.round((Date.now() - startedAt) / 1000),
    cleanStops: `${cleanStops} of ${stops.length}`,
    plain: summary(plainResult),
    fifo: summary(fifoResult),
  };
  console.log(`SOAK-RESULT ${JSON.stringify(figures)}`);
  const ok = plainResult.ok && fifoResult.ok && cleanStops === stops.length && restarts.length === 2;
  console.log(ok ? 'soak passed' : 'soak FAILED');
  if (!ok)
    for (const c of children)
      console.log(`--- rowcast pid ${c.pid} printed (last 2000 characters):\n${c.output.slice(-2000)}`);
  exitCode = ok ? 0 : 1;
  await pool.end();
} finally {
  for (const c of children) {
    c.kill('SIGKILL');
    await c.exited;
  }
  configFile?.remove();
  if (receiver?.connected) {
    receiver.send({ type: 'close' });
    await once(receiver, 'exit');
  }
  await server.stop();
}
process.exit(exitCode);

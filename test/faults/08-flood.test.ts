import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { assertDeliveries, checkDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { rssMb } from '../support/process-memory.js';
import type { ReceivedRequest } from '../support/webhook-receiver.js';

const scenario = new FaultScenario();
const pools: pg.Pool[] = [];
after(async () => {
  for (const p of pools) await p.end().catch(() => {});
  await scenario.cleanup();
});

const BULK_TRANSACTIONS = 4;
const BULK_ROWS = 24_000;
const SINGLE_WRITERS = 4;
const SINGLE_ROWS = 1_000;
const TOTAL = BULK_TRANSACTIONS * BULK_ROWS + SINGLE_WRITERS * SINGLE_ROWS;
/** The subscription's maxConcurrency: the most requests rowcast may have open at the subscriber. */
const LIMIT = 16;
const RSS_BOUND_MB = 400;

/** CPU seconds (user + system) a process has used (Linux; clock ticks of 1/100 s, as on x86-64 and arm64). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').at(-1)!.trim().split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Keeps only what the checker needs of each request: 100,000 full requests would fill the test's own memory. */
const slim = (r: ReceivedRequest): ReceivedRequest => ({
  n: r.n,
  path: r.path,
  headers: { 'webhook-id': r.headers['webhook-id'] },
  body: '',
  json: { body: { after: { id: r.json?.body?.after?.id } } },
  status: r.status,
  at: r.at,
});

test(
  `flood: ${TOTAL.toLocaleString('en')} inserts while the only subscriber blocks; bounded memory and in-flight work, then everything drains`,
  { timeout: 600_000 },
  () =>
    explained(scenario.children, async () => {
      const db = await scenario.createDatabase();
      const receiver = await scenario.addReceiver({ keep: slim });
      await db.pool.query(
        'CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT clock_timestamp())',
      );
      const config: RowcastConfigInput = {
        topics: { items: {} },
        captures: { items: { table: 'items', topic: 'items' } },
        subscriptions: {
          // The timeout outlasts the block: held requests stay open (and count against the limit) until released.
          items: {
            topic: 'items',
            protocol: 'http',
            endpoint: receiver.url,
            maxConcurrency: LIMIT,
            deliveryPolicy: { minDelay: '50ms', maxDelay: '300ms', timeout: '300s' },
            // Rows: the backlog and what was leased of it are counted in delivery rows.
            cursor: false,
          },
        },
        runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s', concurrency: 64 },
      };
      await scenario.useConfig(db.pool, config);
      const child = await scenario.spawn(db.pool, db.url);

      let unblock!: () => void;
      const gate = new Promise<void>((resolve) => (unblock = resolve));
      let blocked = true;
      receiver.reply = () => (blocked ? { status: 200, hold: gate } : { status: 200 });

      const samples: { at: number; rssMb: number; open: number }[] = [];
      const sampler = setInterval(() => {
        const rss = rssMb(child.pid);
        if (rss !== undefined) samples.push({ at: Date.now(), rssMb: rss, open: receiver.open });
      }, 200);
      try {
        // Writers: a few big multi-row transactions and, at the same time, single-row transactions.
        const writers = new pg.Pool({
          connectionString: db.url,
          max: BULK_TRANSACTIONS + SINGLE_WRITERS,
          application_name: 'rowcast test writer',
        });
        pools.push(writers);
        const floodStart = Date.now();
        const bulk = Array.from({ length: BULK_TRANSACTIONS }, (_, i) =>
          writers.query('INSERT INTO items (id, grp) SELECT g, g % 16 FROM generate_series($1::int, $2::int) g', [
            i * BULK_ROWS + 1,
            (i + 1) * BULK_ROWS,
          ]),
        );
        const singles = Array.from({ length: SINGLE_WRITERS }, async (_, w) => {
          const first = BULK_TRANSACTIONS * BULK_ROWS + w * SINGLE_ROWS + 1;
          for (let id = first; id < first + SINGLE_ROWS; id++)
            await writers.query('INSERT INTO items (id, grp) VALUES ($1, $2)', [id, id % 16]);
        });
        await Promise.all([...bulk, ...singles]);
        const insertedMs = Date.now() - floodStart;
        assert.equal(Number((await db.pool.query('SELECT count(*) FROM items')).rows[0].count), TOTAL);

        // The backlog builds up in PostgreSQL: every event routed into a pending delivery, while the subscriber holds.
        await eventually(
          async () => (await db.pool.query('SELECT 1 FROM rowcast.unrouted_events() LIMIT 1')).rowCount === 0,
          'every event to be routed while the subscriber blocks',
          300_000,
        );
        const routedMs = Date.now() - floodStart;
        await sleep(3000); // the blocked state, settled
        const blockedSamples = samples.filter((s) => s.at >= floodStart);
        const blockedEnd = Date.now();
        const { rows: backlog } = await db.pool.query<{ pending: number; in_flight: number }>(
          `SELECT count(*) FILTER (WHERE state = 'pending')::int AS pending, count(*) FILTER (WHERE state = 'in_flight')::int AS in_flight FROM rowcast.deliveries`,
        );
        assert.equal(backlog[0]!.pending + backlog[0]!.in_flight, TOTAL, 'the whole backlog is in PostgreSQL');
        // Leased rows are the sends plus what the claim loop prefetched into its bounded local queue: a small
        // fraction of the backlog, however large it is (the sends themselves are checked at the subscriber).
        const leasedWhileBlocked = backlog[0]!.in_flight;
        assert.ok(leasedWhileBlocked < TOTAL / 10, `leased while blocked: ${leasedWhileBlocked} of ${TOTAL}`);
        const openWhileBlocked = receiver.open;

        // Memory does not grow with the backlog: the second half of the blocked phase peaks no higher than the first.
        const mid = floodStart + (blockedEnd - floodStart) / 2;
        const peak = (xs: typeof samples) => Math.max(...xs.map((s) => s.rssMb));
        const firstHalfPeak = peak(blockedSamples.filter((s) => s.at < mid));
        const secondHalfPeak = peak(blockedSamples.filter((s) => s.at >= mid));
        assert.ok(
          secondHalfPeak <= firstHalfPeak * 1.3 + 30,
          `RSS grew with the backlog: ${firstHalfPeak.toFixed(0)} MB, then ${secondHalfPeak.toFixed(0)} MB`,
        );

        // Unblock: everything drains.
        const drainStart = Date.now();
        const cpuBeforeDrain = cpuSeconds(child.pid);
        blocked = false;
        unblock();
        const ids = (await db.pool.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
        // Checked every second, not every few milliseconds: each check walks 100,000 requests.
        for (const deadline = Date.now() + 420_000; ; await sleep(1000)) {
          if (
            receiver.delivered.length >= TOTAL &&
            checkDeliveries({ committed: ids, requests: receiver.requests }).missing.length === 0
          )
            break;
          assert.ok(
            Date.now() < deadline,
            `drained only ${receiver.delivered.length} of ${TOTAL} in ${Date.now() - drainStart} ms`,
          );
        }
        const drainMs = Date.now() - drainStart;
        const drainCpuSeconds = cpuSeconds(child.pid) - cpuBeforeDrain;
        // Deliveries per second over each quarter of the drain: a rate that sinks as the backlog shrinks would be a
        // claim that scans what was already delivered.
        const quarters = [0, 1, 2, 3].map((q) => {
          const from = drainStart + (q * drainMs) / 4;
          const to = drainStart + ((q + 1) * drainMs) / 4;
          return Math.round(receiver.requests.filter((r) => r.at >= from && r.at < to).length / (drainMs / 4000));
        });
        // And the peak RSS per quarter: memory that grew with every delivery would be a leak.
        const rssQuarters = [0, 1, 2, 3].map((q) =>
          Math.round(
            Math.max(
              0,
              ...samples
                .filter((x) => x.at >= drainStart + (q * drainMs) / 4 && x.at < drainStart + ((q + 1) * drainMs) / 4)
                .map((x) => x.rssMb),
            ),
          ),
        );
        await eventually(
          async () =>
            (await db.pool.query(`SELECT 1 FROM rowcast.deliveries WHERE state <> 'done' LIMIT 1`)).rowCount === 0,
          'every delivery to be recorded done',
          60_000,
        );
        const recordedMs = Date.now() - drainStart;
        clearInterval(sampler);
        const result = assertDeliveries({ committed: ids, requests: receiver.requests });
        const peakRss = peak(samples);
        const peakOpen = Math.max(receiver.peakOpen, ...samples.map((s) => s.open));
        assert.ok(
          receiver.peakOpen <= LIMIT,
          `in flight at the subscriber peaked at ${receiver.peakOpen}, over the limit ${LIMIT}`,
        );
        assert.ok(peakRss < RSS_BOUND_MB, `peak RSS ${peakRss.toFixed(0)} MB (bound ${RSS_BOUND_MB} MB)`);
        assert.ok(child.running, 'rowcast survived the flood');
        assert.deepEqual(await stopChild(child), { code: 0, signal: null });

        reportResult('flood', {
          inserts: TOTAL,
          transactions: `${BULK_TRANSACTIONS} × ${BULK_ROWS} rows + ${SINGLE_WRITERS} writers × ${SINGLE_ROWS} single-row`,
          insertedMs,
          routedWhileBlockedMs: routedMs,
          limit: LIMIT,
          openWhileBlocked,
          leasedWhileBlocked,
          peakInFlight: peakOpen,
          peakRssMb: Math.round(peakRss),
          blockedFirstHalfPeakRssMb: Math.round(firstHalfPeak),
          blockedSecondHalfPeakRssMb: Math.round(secondHalfPeak),
          drainMs,
          drainPerSecond: Math.round(TOTAL / (drainMs / 1000)),
          drainPerSecondByQuarter: quarters,
          rowcastCpuDuringDrainS: Math.round(drainCpuSeconds * 10) / 10,
          drainPeakRssMbByQuarter: rssQuarters,
          allRecordedDoneMs: recordedMs,
          committed: result.committed,
          delivered: result.delivered,
          duplicates: result.duplicates,
          requests: result.requests,
        });
      } finally {
        clearInterval(sampler);
      }
    }),
);

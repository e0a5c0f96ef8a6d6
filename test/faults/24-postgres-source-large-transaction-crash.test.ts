import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult } from '../support/fault-harness.js';
import { resetPeakRss, rssMb } from '../support/process-memory.js';

/*
 * A PostgreSQL source on a second server (an embedded PostgreSQL) commits one transaction of 200,000 rows; rowcast
 * is SIGKILLed while it stages that transaction in the store (rowcast.source_staging), and a new process reads the
 * slot again: every row arrives once, and the new process's peak RSS stays bounded while it stages and promotes.
 * `keys` payloads to a topic without subscriptions: the point is the capture, not 200,000 webhooks.
 */

const scenario = new FaultScenario();
let source: EmbeddedDatabase | undefined;
after(async () => {
  await scenario.cleanup();
  await source?.stop();
});

const ROWS = 200_000;
const RSS_BOUND_MB = 300;

test(
  `PostgreSQL source: a transaction of ${ROWS.toLocaleString('en')} rows, rowcast SIGKILLed while staging it`,
  { timeout: 900_000 },
  () =>
    explained(scenario.children, async () => {
      source = await startEmbeddedPostgres();
      const src = new pg.Client({ connectionString: source.url });
      await src.connect();
      try {
        await src.query('CREATE TABLE big (id int PRIMARY KEY)');
        const db = await scenario.createDatabase();
        const env = { ROWCAST_FAULT_SOURCE_URL: source.url };
        process.env.ROWCAST_FAULT_SOURCE_URL = source.url;
        const config: RowcastConfigInput = {
          sources: { shop: { kind: 'postgres', url: { env: 'ROWCAST_FAULT_SOURCE_URL' } } },
          topics: { big: {} },
          captures: { big: { source: 'shop', table: 'big', topic: 'big', payload: 'keys', operations: ['INSERT'] } },
          runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s' },
        };
        await scenario.useConfig(db.pool, config);
        const first = await scenario.spawn(db.pool, db.url, env);
        await eventually(
          async () =>
            (await src.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'rowcast_shop' AND active`))
              .rowCount,
          'the slot streamed',
        );

        await src.query(`INSERT INTO big SELECT g FROM generate_series(1, ${ROWS}) g`);
        // Killed once part of the transaction is staged (or, on a fast machine, once it was promoted already).
        const staged = await eventually(
          async () => {
            const { rows } = await db.pool.query<{ staged: number; events: number }>(
              `SELECT (SELECT count(*)::int FROM rowcast.source_staging WHERE source = 'shop') AS staged, (SELECT count(*)::int FROM rowcast.events WHERE capture = 'big') AS events`,
            );
            return rows[0]!.staged > 0 || rows[0]!.events > 0 ? rows[0]! : null;
          },
          'staging begun',
          300_000,
        );
        first.kill('SIGKILL');
        await first.exited;
        await src.query(`INSERT INTO big VALUES (-1)`);

        const second = await scenario.spawn(db.pool, db.url, env);
        resetPeakRss(second.pid);
        let peak = 0;
        const count = async () =>
          (
            await db.pool.query<{ n: number; ids: number }>(
              `SELECT count(*)::int AS n, count(DISTINCT key ->> 'id')::int AS ids FROM rowcast.events WHERE capture = 'big'`,
            )
          ).rows[0]!;
        await eventually(
          async () => {
            peak = Math.max(peak, rssMb(second.pid, 'VmHWM') ?? 0);
            return (await count()).n >= ROWS + 1;
          },
          'every row after the restart',
          600_000,
        );
        await new Promise((r) => setTimeout(r, 1000));
        assert.deepEqual(await count(), { n: ROWS + 1, ids: ROWS + 1 }, 'every row once');
        assert.ok(
          peak < RSS_BOUND_MB,
          `peak RSS ${Math.round(peak)} MB of the process that read the transaction again (bound ${RSS_BOUND_MB} MB)`,
        );
        assert.equal(
          (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.source_staging`)).rows[0].n,
          0,
          'staging emptied',
        );
        reportResult('24-postgres-source-large-transaction-crash', {
          rows: ROWS,
          stagedAtKill: staged.staged,
          eventsAtKill: staged.events,
          peakRssMb: Math.round(peak),
          boundMb: RSS_BOUND_MB,
        });
      } finally {
        await src.end();
      }
    }),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { eventually } from '../support/database.js';
import { explained, FaultScenario, reportResult } from '../support/fault-harness.js';
import { resetPeakRss, rssMb } from '../support/process-memory.js';

/*
 * Logical capture of one transaction of 2,000,000 row changes: the reader must hold bounded memory (it stages
 * the changes chunk by chunk and promotes them at the commit), so rowcast's peak RSS stays under 300 MB; the
 * committed transaction arrives whole, once; a rolled-back one of the same size gives nothing. The point is the
 * capture's memory, so the capture writes `keys` payloads to a topic without subscriptions (routing only counts
 * its messages): no 2,000,000 webhooks to wait for.
 */

const scenario = new FaultScenario();
after(() => scenario.cleanup());

const ROWS = 2_000_000;
const RSS_BOUND_MB = 300;

test(
  `logical capture: a transaction of ${ROWS.toLocaleString('en')} changes in bounded memory, committed and rolled back`,
  { timeout: 900_000 },
  () =>
    explained(scenario.children, async () => {
      const db = await scenario.createDatabase();
      await db.pool.query('CREATE TABLE big (id int PRIMARY KEY)');
      const config: RowcastConfigInput = {
        topics: { big: {} },
        captures: { big: { table: 'big', topic: 'big', mode: 'logical', payload: 'keys', operations: ['INSERT'] } },
        runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s' },
      };
      await scenario.useConfig(db.pool, config);
      const child = await scenario.spawn(db.pool, db.url);
      await eventually(
        async () =>
          (await db.pool.query('SELECT 1 FROM pg_replication_slots WHERE database = current_database() AND active'))
            .rowCount,
        'the slot streamed',
      );
      const startRssMb = rssMb(child.pid)!;

      /** Runs a phase and waits until capture has written the log up to the position after it; rowcast's peak RSS meanwhile. */
      const phase = async (what: string, sql: string, marker: number) => {
        const separate = resetPeakRss(child.pid);
        const t0 = Date.now();
        await db.pool.query(sql);
        // A row committed after the phase: once capture has written past it, it has decided on the phase.
        const { rows } = await db.pool.query<{ lsn: string }>(
          `INSERT INTO big VALUES ($1) RETURNING pg_current_wal_insert_lsn()::text AS lsn`,
          [marker],
        );
        let peak = 0;
        await eventually(
          async () => {
            peak = Math.max(peak, rssMb(child.pid, 'VmHWM') ?? 0);
            if (peak > RSS_BOUND_MB) return true; // fails below, at once
            const done = await db.pool.query(`SELECT 1 FROM rowcast.capture_progress WHERE lsn > $1::pg_lsn`, [
              rows[0]!.lsn,
            ]);
            return done.rowCount;
          },
          `capture past the ${what} transaction`,
          600_000,
        );
        return { peakRssMb: Math.round(peak), seconds: Math.round((Date.now() - t0) / 1000), separate };
      };

      const committed = await phase('committed', `INSERT INTO big SELECT g FROM generate_series(1, ${ROWS}) g`, -1);
      assert.ok(
        committed.peakRssMb < RSS_BOUND_MB,
        `peak RSS ${committed.peakRssMb} MB while capturing the committed transaction (bound ${RSS_BOUND_MB} MB)`,
      );
      const events = async () =>
        (
          await db.pool.query<{ n: number; ids: number; sum: string }>(
            `SELECT count(*)::int AS n, count(DISTINCT key ->> 'id')::int AS ids, sum((key ->> 'id')::bigint)::text AS sum FROM rowcast.events WHERE capture = 'big' AND (key ->> 'id')::int > 0`,
          )
        ).rows[0]!;
      assert.deepEqual(
        await events(),
        { n: ROWS, ids: ROWS, sum: String((ROWS * (ROWS + 1)) / 2) },
        'every change once',
      );

      const rolledBack = await phase(
        'rolled-back',
        `BEGIN; INSERT INTO big SELECT g FROM generate_series(${ROWS + 1}, ${2 * ROWS}) g; ROLLBACK`,
        -2,
      );
      assert.ok(
        rolledBack.peakRssMb < RSS_BOUND_MB,
        `peak RSS ${rolledBack.peakRssMb} MB while decoding the rolled-back transaction (bound ${RSS_BOUND_MB} MB)`,
      );
      assert.deepEqual(
        await events(),
        { n: ROWS, ids: ROWS, sum: String((ROWS * (ROWS + 1)) / 2) },
        'nothing of the rolled-back transaction',
      );
      const markers = await db.pool.query(
        `SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'big' AND (key ->> 'id')::int < 0`,
      );
      assert.equal(markers.rows[0].n, 2, 'the rows committed after each phase');

      // One stream throughout: the promotion's long statement did not make the server drop it (wal_sender_timeout).
      assert.doesNotMatch(child.output, /logical capture stopped/);

      reportResult('13-logical-large-transaction', {
        rows: ROWS,
        startRssMb: Math.round(startRssMb),
        committed,
        rolledBack,
        boundMb: RSS_BOUND_MB,
      });
    }),
);

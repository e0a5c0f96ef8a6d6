import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import {
  explained,
  FaultScenario,
  reportResult,
  sleep,
  stopChild,
  waitAllDelivered,
} from '../support/fault-harness.js';

const scenario = new FaultScenario();

after(() => scenario.cleanup());

const POLL_MS = 1000;
/** Scheduling slack on a busy 2-core machine on top of one poll interval. */
const SLACK_MS = 1500;

test('NOTIFY lost: polling still delivers within the poll interval', { timeout: 180_000 }, () =>
  explained(scenario.children, async () => {
    const {
      db,
      receiver: rx,
      child,
    } = await scenario.startOnTestDatabase({ runtime: { pollInterval: `${POLL_MS}ms` } });

    const pool = db.pool;
    let id = 0;
    const latency = async (insert: () => Promise<void>) => {
      const row = ++id;
      await insert();
      const t0 = Date.now();
      await pool.query('INSERT INTO items (id) VALUES ($1)', [row]);
      const got = await eventually(
        () => rx.delivered.find((r) => r.json?.body?.after?.id === row),
        `row ${row} delivered`,
        15_000,
      );
      return got.at - t0;
    };
    const sleepingAgain = () =>
      eventually(
        async () => (await pool.query(`SELECT 1 FROM rowcast.dispatchers WHERE sleeping`)).rowCount,
        'the dispatcher to sleep again',
        15_000,
      );

    // (a) The trigger sends no NOTIFY: the sleeping flag is cleared behind the dispatcher's back, as if the
    // notification had been lost, so only its poll can find the row.
    const noNotify: number[] = [];
    for (let i = 0; i < 4; i++) {
      await sleepingAgain();
      await sleep(Math.floor(Math.random() * POLL_MS));
      noNotify.push(
        await latency(async () => void (await pool.query('UPDATE rowcast.dispatchers SET sleeping = false'))),
      );
    }
    // (b) The LISTEN connection is terminated and the row inserted while it is down.
    const listenerDown: number[] = [];
    let terminated = 0;
    for (let i = 0; i < 4; i++) {
      await sleepingAgain();
      await sleep(Math.floor(Math.random() * POLL_MS));
      listenerDown.push(
        await latency(async () => {
          const { rows } = await pool.query<{ n: number }>(
            `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'rowcast listener'`,
          );
          terminated += rows[0]!.n;
        }),
      );
    }
    const ids = await waitAllDelivered(pool, rx, 'every row delivered', 20_000);
    const result = assertDeliveries({ committed: ids, requests: rx.requests });
    assert.ok(terminated >= 3, `the listener was terminated (${terminated} times)`);
    for (const ms of [...noNotify, ...listenerDown])
      assert.ok(ms <= POLL_MS + SLACK_MS, `delivered ${ms} ms after commit (poll interval ${POLL_MS} ms)`);
    assert.deepEqual(await stopChild(child), { code: 0, signal: null });
    reportResult('lost-notify', {
      pollIntervalMs: POLL_MS,
      committed: result.committed,
      delivered: result.delivered,
      duplicates: result.duplicates,
      latencyWithoutNotifyMs: noNotify,
      latencyListenerTerminatedMs: listenerDown,
      listenerTerminations: terminated,
    });
  }),
);

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import {
  explained,
  FaultScenario,
  reportResult,
  sleep,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';
import type { WebhookReceiver } from '../support/webhook-receiver.js';

const scenario = new FaultScenario();
let admin: pg.Client | undefined;
after(async () => {
  await admin?.end().catch(() => {});
  await scenario.cleanup();
});

const FAULT_MS = 4000;

/**
 * The invariant of this scenario: every delivery rowcast has marked done was received — answered 2xx — by the
 * subscriber under that delivery's message id (its webhook-id). Returns how many are done.
 */
async function assertDoneWereReceived(client: pg.Client, receiver: WebhookReceiver, when: string): Promise<number> {
  const { rows } = await client.query<{ id: string }>(
    `SELECT message_id::text AS id FROM rowcast.deliveries WHERE state = 'done'`,
  );
  const received = new Set(receiver.delivered.map((r) => String(r.headers['webhook-id'])));
  const notReceived = rows.filter((r) => !received.has(r.id)).map((r) => r.id);
  assert.deepEqual(notReceived, [], `${when}: deliveries marked done that the subscriber never received`);
  return rows.length;
}

test(
  'the database fails commits, then turns read-only, while rowcast delivers: nothing marked delivered that was not, nothing lost, no crash',
  { timeout: 240_000 },
  () =>
    explained(scenario.children, async () => {
      const { db, receiver, child } = await scenario.startOnTestDatabase({
        reply: () => ({ status: 200, delayMs: Math.floor(Math.random() * 10) }),
        // Rows: the commits that fail are those that mark a delivery row done.
        subscription: { cursor: false },
      });
      // The test's own connection, opened before the faults and read-write whatever the database's default becomes.
      admin = new pg.Client({ connectionString: db.url, application_name: 'rowcast test admin' });
      await admin.connect();
      await admin.query('SET default_transaction_read_only = off');
      const writer = new Writer(db.url, 10);
      await sleep(1500);

      // (1) Every transaction that marks a delivery done fails at COMMIT (a deferred constraint trigger), while
      // the sends themselves succeed: rowcast must keep those results and record them later, not lose or fake them.
      await admin.query(`CREATE FUNCTION public.fault_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'fault injected: commit refused'; END $$`);
      await admin.query(`CREATE CONSTRAINT TRIGGER fault_fail_commit AFTER UPDATE ON rowcast.deliveries DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION public.fault_fail_commit()`);
      const doneBefore = Number(
        (await admin.query(`SELECT count(*) FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].count,
      );
      const receivedBefore = receiver.delivered.length;
      await sleep(FAULT_MS);
      const doneDuring = Number(
        (await admin.query(`SELECT count(*) FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].count,
      );
      const receivedDuringCommitFailures = receiver.delivered.length - receivedBefore;
      assert.equal(doneDuring, doneBefore, 'no delivery could be marked done while its commit failed');
      assert.ok(receivedDuringCommitFailures > 0, 'deliveries were sent while their results could not be recorded');
      await assertDoneWereReceived(admin, receiver, 'while commits failed');
      await admin.query(
        'DROP TRIGGER fault_fail_commit ON rowcast.deliveries; DROP FUNCTION public.fault_fail_commit()',
      );
      const commitsBackAt = Date.now();
      await eventually(
        async () =>
          Number((await admin!.query(`SELECT count(*) FROM rowcast.deliveries WHERE state = 'done'`)).rows[0].count) >
          doneBefore,
        'results to be recorded once commits work again',
        30_000,
      );
      const commitRecoveryMs = Date.now() - commitsBackAt;
      await assertDoneWereReceived(admin, receiver, 'after commits came back');

      // (2) The database turns read-only: new sessions default to read-only transactions, and rowcast's (and the
      // writers') connections are terminated, so they come back read-only. Then it turns read-write again, without
      // touching rowcast's connections: rowcast must get rid of its read-only sessions on its own.
      const dbName = pg.escapeIdentifier(db.name);
      await admin.query(`ALTER DATABASE ${dbName} SET default_transaction_read_only = on`);
      const { rows: killed } = await admin.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> 'rowcast test admin'`,
      );
      assert.ok(killed[0]!.n > 0, `rowcast's connections were terminated to come back read-only (${killed[0]!.n})`);
      await sleep(FAULT_MS);
      await assertDoneWereReceived(admin, receiver, 'while read-only');
      const { rows: readOnlySessions } = await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'rowcast%' AND application_name NOT LIKE 'rowcast test%'`,
      );
      await admin.query(`ALTER DATABASE ${dbName} RESET default_transaction_read_only`);
      const readWriteAt = Date.now();
      // A change committed now must be delivered — through rowcast's own recovery, nobody restarts anything.
      await admin.query('INSERT INTO items (id) VALUES (-1)');
      const marker = await eventually(
        () => receiver.delivered.find((r) => r.json?.body?.after?.id === -1),
        'a change committed after the database turned read-write again',
        60_000,
      );
      const readOnlyRecoveryMs = marker.at - readWriteAt;
      await eventually(
        async () =>
          (
            await admin!.query(`SELECT 1 FROM rowcast.deliveries WHERE state = 'done' AND message_id = $1`, [
              marker.headers['webhook-id'],
            ])
          ).rowCount,
        'its delivery to be recorded done',
        30_000,
      );

      await writer.stop();
      assert.ok(child.running, 'rowcast survived the faults');
      const ids = await waitAllDelivered(
        db.pool,
        receiver,
        'every committed row to be delivered after the faults',
        60_000,
      );
      await eventually(
        async () =>
          (await admin!.query(`SELECT 1 FROM rowcast.deliveries WHERE state <> 'done' LIMIT 1`)).rowCount === 0,
        'every delivery to be recorded done',
        30_000,
      );
      const done = await assertDoneWereReceived(admin, receiver, 'at the end');
      const result = assertDeliveries({ committed: ids, requests: receiver.requests });
      assert.equal(done, result.committed, 'every committed row has exactly one delivery, done');
      assert.deepEqual(
        await stopChild(child),
        { code: 0, signal: null },
        'rowcast stops cleanly after the faults (no hang)',
      );

      reportResult('commit-failure', {
        faultMs: FAULT_MS,
        writesAttempted: writer.attempted,
        writesFailed: writer.failed,
        sentWhileCommitsFailed: receivedDuringCommitFailures,
        commitRecoveryMs,
        connectionsTerminatedForReadOnly: killed[0]!.n,
        rowcastSessionsWhileReadOnly: readOnlySessions[0]!.n,
        readOnlyRecoveryMs,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
      });
    }),
);

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pauseSubscription, resumeSubscription, type RowcastRuntime } from '../../src/index.js';
import { completeLogRanges, leaseLogRanges } from '../../src/delivery/cursor-store.js';
import { INITIAL_HORIZON, type LeasedMessage } from '../../src/store/log-leases.js';
import { applyRetention } from '../../src/store/retention.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/**
 * Cursor subscriptions on claim-check topics (migration 031): a link a cursor sent resolves until its TTL has
 * passed, however old the message was when the cursor reached it, and only then may retention delete the body;
 * a range taken over after its lease expired is recorded by each owner's completion, refused or not.
 */
const TEST = { timeout: patient(120_000) };
const WAIT = patient(60_000);
const BODY = 300 * 1024;

let db: TestDatabase;
let rowcast: RowcastRuntime;
let rows: WebhookReceiver;
let cursor: WebhookReceiver;
let brief: WebhookReceiver;

before(async () => {
  db = await createTestDatabase();
  [rows, cursor, brief] = [await WebhookReceiver.start(), await WebhookReceiver.start(), await WebhookReceiver.start()];
  await db.pool.query(
    `CREATE TABLE documents (id int PRIMARY KEY, content text); CREATE TABLE notes (id int PRIMARY KEY, content text); CREATE TABLE reports (id int PRIMARY KEY, content text)`,
  );
  await applyConfig(db.pool, {
    topics: {
      documents: { largeMessages: 'claim-check', claimCheckTtl: '1h' },
      notes: { largeMessages: 'claim-check', claimCheckTtl: '2s' },
      reports: { largeMessages: 'claim-check', claimCheckTtl: '1h' },
    },
    captures: {
      documents: { table: 'documents', topic: 'documents' },
      notes: { table: 'notes', topic: 'notes' },
      reports: { table: 'reports', topic: 'reports' },
    },
    subscriptions: {
      rows: { topic: 'documents', protocol: 'http', endpoint: rows.url, cursor: false },
      cursor: { topic: 'documents', protocol: 'http', endpoint: cursor.url, cursor: true },
      // Leased by the test itself (paused: no process claims it).
      manual: { topic: 'reports', protocol: 'http', endpoint: cursor.url, cursor: true },
      brief: { topic: 'notes', protocol: 'http', endpoint: brief.url, cursor: true },
    },
  });
  // The cursor starts behind: what it sends is older than the links' TTL by the time it is sent (a backlog).
  await pauseSubscription(db.pool, 'cursor');
  await pauseSubscription(db.pool, 'manual');
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
});

after(async () => {
  await rowcast?.stop();
  for (const r of [rows, cursor, brief]) await r?.close();
  await db?.drop();
});

interface ClaimCheck {
  url: string;
  expires: string;
  size: number;
  sha256: string;
}

const referenceIn = (receiver: WebhookReceiver, id: string) =>
  receiver.requests.find((r) => r.status === 200 && r.json.id === id)?.json.body?.rowcastClaimCheck as
    ClaimCheck | undefined;

async function messageOf(topic: string, key: number): Promise<{ id: string; seq: string }> {
  return eventually(
    async () =>
      (
        await db.pool.query<{ id: string; seq: string }>(
          `SELECT m.id::text, m.seq::text FROM rowcast.messages m JOIN rowcast.events e ON e.id = m.event_id
            WHERE m.topic = $1 AND (e.key ->> 'id')::int = $2`,
          [topic, key],
        )
      ).rows[0],
    `the message of ${topic} ${key}`,
  );
}

const kept = async (id: string) =>
  (await db.pool.query(`SELECT 1 FROM rowcast.messages WHERE id = $1`, [id])).rowCount === 1;

/** The cursor's range holding `seq` was completed, and no row of the message is pending or in flight. */
async function passed(subscription: string, id: string, seq: string): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT rowcast.cursor_position($1) >= $2::bigint AS passed,
              NOT EXISTS (SELECT 1 FROM rowcast.deliveries WHERE message_id = $3 AND state IN ('pending', 'in_flight')) AS idle`,
      [subscription, seq, id],
    );
    return rows[0].passed && rows[0].idle;
  }, `${subscription} passed message ${seq}`);
}

/** The link resolves to the stored body. */
async function resolves(check: ClaimCheck): Promise<void> {
  const res = await request(check.url);
  assert.equal(res.statusCode, 200, 'the link resolves');
  const body = await res.body.text();
  assert.equal(createHash('sha256').update(body).digest('hex'), check.sha256);
}

describe('cursor subscriptions on claim-check topics', () => {
  test(
    'a cursor that reaches a message long after it was created sends a link that resolves, and retention keeps the body while the link lasts',
    TEST,
    async () => {
      await db.pool.query(`INSERT INTO documents VALUES (1, repeat('d', ${BODY}))`);
      const { id, seq } = await messageOf('documents', 1);
      const byRow = await eventually(() => referenceIn(rows, id), 'the rows subscription got the reference', WAIT);
      await resolves(byRow);

      // Older than the links' TTL (1h) and than retention (1 min) before the cursor reaches it; the row's link is
      // made old too, so that only the cursor's can keep the body.
      await db.pool.query(`UPDATE rowcast.messages SET created_at = now() - interval '2 hours' WHERE id = $1`, [id]);
      await db.pool.query(
        `UPDATE rowcast.deliveries SET updated_at = now() - interval '2 hours' WHERE message_id = $1`,
        [id],
      );
      await applyRetention(db.pool, 60_000, 60_000);
      assert.ok(await kept(id), 'kept: the cursor has not passed it');

      await resumeSubscription(db.pool, 'cursor');
      const byCursor = await eventually(() => referenceIn(cursor, id), 'the cursor got the reference', WAIT);
      assert.equal(byCursor.size, byRow.size);
      assert.ok(Date.parse(byCursor.expires) > Date.now() + 30 * 60_000, 'a link lasting the topic TTL from its send');
      await passed('cursor', id, seq);
      assert.equal(
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM rowcast.cursor_claim_checks
              WHERE topic = 'documents' AND from_seq < $1 AND to_seq >= $1 AND expires_at > now() + interval '30 minutes'`,
            [seq],
          )
        ).rows[0].n,
        1,
        'its range recorded the links it sent',
      );
      // Handed-back work (a loaded machine) may have given it a row since: that row's link is made old as well.
      await db.pool.query(
        `UPDATE rowcast.deliveries SET updated_at = now() - interval '2 hours' WHERE message_id = $1`,
        [id],
      );
      await applyRetention(db.pool, 60_000, 60_000);
      assert.ok(await kept(id), "kept after the cursor passed it: the cursor's link is live");
      await resolves(byCursor);

      // A small message of the same topic is not claim-checked: retention deletes it as before.
      await db.pool.query(`INSERT INTO documents VALUES (2, 'small')`);
      const small = await messageOf('documents', 2);
      await passed('cursor', small.id, small.seq);
      assert.equal(cursor.requests.find((r) => r.json.id === small.id)?.json.body.after.content, 'small');
      await db.pool.query(`UPDATE rowcast.messages SET created_at = now() - interval '2 hours' WHERE id = $1`, [
        small.id,
      ]);
      await applyRetention(db.pool, 60_000, 60_000);
      assert.ok(!(await kept(small.id)), 'a message sent whole is not kept for links');
      assert.ok(await kept(id), 'the claim-checked one still is');
    },
  );

  test('after the TTL of the links a cursor sent, retention deletes the body', TEST, async () => {
    await db.pool.query(`INSERT INTO notes VALUES (1, repeat('n', ${BODY}))`);
    const { id, seq } = await messageOf('notes', 1);
    const check = await eventually(() => referenceIn(brief, id), 'the cursor got the reference', WAIT);
    await passed('brief', id, seq);
    await db.pool.query(`UPDATE rowcast.messages SET created_at = now() - interval '10 minutes' WHERE id = $1`, [id]);
    const expires = Date.parse(check.expires);
    const deletedBy = await eventually(
      async () => {
        await applyRetention(db.pool, 60_000, 60_000);
        return !(await kept(id)) && Date.now();
      },
      'retention deleted the body after its links expired',
      WAIT,
    );
    assert.ok(deletedBy > expires, 'deleted only once its link had expired');
    const res = await request(check.url);
    assert.equal(res.statusCode, 403, 'the link has expired');
    await res.body.dump();
    assert.equal(
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.cursor_claim_checks WHERE topic = 'notes'`)).rows[0]
        .n,
      0,
      "the range's record went with its links",
    );
  });

  test("a range taken over after its lease expired is recorded by both owners' completions", TEST, async () => {
    await db.pool.query(`INSERT INTO reports VALUES (1, repeat('r', ${BODY}))`);
    const { id } = await messageOf('reports', 1);
    let horizon = INITIAL_HORIZON;
    const lease = async (leaseMs: number): Promise<LeasedMessage> =>
      eventually(async () => {
        const leased = await leaseLogRanges(db.pool, new Map([['manual', 10]]), leaseMs, 'test', horizon);
        horizon = leased.horizon;
        return leased.messages.find((m) => m.delivery.message.id === id);
      }, 'a lease of the manual cursor');
    const first = await lease(1);
    await new Promise((r) => setTimeout(r, 20));
    const second = await lease(60_000);
    assert.equal(second.range.fromSeq, first.range.fromSeq, 'the expired range taken over whole');
    assert.notEqual(second.range.lease, first.range.lease);

    const completion = (m: LeasedMessage) => ({
      range: m.range,
      failed: [],
      handedBack: [],
      claimChecks: { topic: 'reports', ttlMs: 3_600_000 },
    });
    const records = async () =>
      (
        await db.pool.query(
          `SELECT expires_at > now() + interval '59 minutes' AS lasting FROM rowcast.cursor_claim_checks
            WHERE topic = 'reports' AND from_seq = $1 AND to_seq = $2`,
          [first.range.fromSeq, first.range.toSeq],
        )
      ).rows;
    // The first owner sent its links before its lease ran out: its completion is refused, its links are recorded.
    assert.equal((await completeLogRanges(db.pool, [completion(first)])).completed, 0, 'the old lease is refused');
    assert.deepEqual(await records(), [{ lasting: true }], 'the links of a refused completion are recorded');
    assert.equal((await completeLogRanges(db.pool, [completion(second)])).completed, 1);
    assert.deepEqual(
      await records(),
      [{ lasting: true }, { lasting: true }],
      "recorded from each completion, lasting the links' TTL",
    );
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  getLag,
  getStatus,
  parseConfig,
  pauseSubscription,
  resumeSubscription,
  type RowcastConfigInput,
  type RowcastRuntime,
} from '../../src/index.js';
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
 * Subscriptions that read their topic through a cursor (`cursor: true`, migration 030) beside one with delivery rows:
 * the same messages under the same ids, rows only for what failed, filter policies at delivery, two processes
 * sharing a cursor, and switching between rows and a cursor while rows are written, without losing a message.
 */
const TEST = { timeout: patient(120_000) };
const WAIT = patient(60_000);

let db: TestDatabase;
let rowcast: RowcastRuntime;
const receivers = {} as Record<'rows' | 'cursor' | 'filtered' | 'flaky', WebhookReceiver>;

function config(cursor: { cursor?: boolean } = { cursor: true }): RowcastConfigInput {
  return {
    topics: { orders: {}, dead: {} },
    captures: { orders: { table: 'orders', topic: 'orders' } },
    subscriptions: {
      // Rows: cursors are the default (a subscription declared without `cursor` reads through one).
      rows: { topic: 'orders', protocol: 'http', endpoint: receivers.rows.url, cursor: false },
      cursor: { topic: 'orders', protocol: 'http', endpoint: receivers.cursor.url, ...cursor },
      filtered: {
        topic: 'orders',
        protocol: 'http',
        endpoint: receivers.filtered.url,
        cursor: true,
        filterPolicy: { op: ['INSERT'] },
      },
      flaky: {
        topic: 'orders',
        protocol: 'http',
        endpoint: receivers.flaky.url,
        cursor: true,
        deliveryPolicy: { minDelay: '50ms', maxDelay: '100ms', maxAttempts: 3 },
        deadLetter: { topic: 'dead' },
      },
    },
  };
}

before(async () => {
  db = await createTestDatabase();
  for (const name of ['rows', 'cursor', 'filtered', 'flaky'] as const) receivers[name] = await WebhookReceiver.start();
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, note text)`);
  await applyConfig(db.pool, config());
  rowcast = await startTestRowcast(db.url);
});

after(async () => {
  await rowcast?.stop();
  for (const r of Object.values(receivers)) await r?.close();
  await db?.drop();
});

/** Message ids a receiver got answered with 2xx, per id how often. */
function delivered(receiver: WebhookReceiver): Map<string, number> {
  const ids = new Map<string, number>();
  for (const r of receiver.requests)
    if (r.status >= 200 && r.status < 300) {
      const id = String(r.headers['webhook-id']);
      ids.set(id, (ids.get(id) ?? 0) + 1);
    }
  return ids;
}

/**
 * Whether the receiver got every one of these message ids. One pass over its requests: the receivers run in this
 * process, and a check that rebuilt the set per id starved them (attempts timed out) on a loaded machine.
 */
function receivedAll(receiver: WebhookReceiver, ids: Map<number, string>): boolean {
  const got = delivered(receiver);
  return [...ids.values()].every((id) => got.has(id));
}

async function messagesOf(from: number, to: number): Promise<Map<number, string>> {
  const { rows } = await db.pool.query<{ id: string; key: number }>(
    `SELECT m.id::text, (e.key ->> 'id')::int AS key FROM rowcast.messages m JOIN rowcast.events e ON e.id = m.event_id
      WHERE m.topic = 'orders' AND (e.key ->> 'id')::int BETWEEN $1 AND $2`,
    [from, to],
  );
  return new Map(rows.map((r) => [r.key, r.id]));
}

describe('subscriptions read through a cursor', () => {
  test(
    'deliver what a rows subscription delivers, under the same ids, without rows for what they sent',
    TEST,
    async () => {
      for (let i = 0; i < 10; i++)
        await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series($1::int, $1 + 49) g`, [i * 50 + 1]);
      await db.pool.query(`BEGIN; INSERT INTO orders VALUES (100000, 'rolled back'); ROLLBACK`).catch(() => {});
      const ids = await eventually(
        async () => {
          const m = await messagesOf(1, 500);
          return m.size === 500 && m;
        },
        'routing of 500 rows',
        WAIT,
      );
      await eventually(
        () => receivedAll(receivers.cursor, ids) && receivedAll(receivers.rows, ids),
        'both subscriptions received all 500 messages',
        WAIT,
      );
      assert.deepEqual(
        new Set(delivered(receivers.cursor).keys()),
        new Set(delivered(receivers.rows).keys()),
        'the cursor delivered exactly the messages the rows did',
      );
      // Rows only for failed attempts (none here) and for work handed back unsent, which a loaded machine may do
      // (claimed ahead, its lease ran short before a slot was free): those were then sent once, from their row.
      // The filtered cursor's are not awaited above, and results are written in batches after the sends: the rows
      // are read once none handed back waits or is in flight (a failure, pending with its error, does not wait).
      await eventually(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS open FROM rowcast.deliveries
            WHERE subscription IN ('cursor', 'filtered')
              AND (state = 'in_flight' OR (state = 'pending' AND last_error IS NULL))`,
          );
          return rows[0].open === 0;
        },
        'the rows handed back are sent and their results recorded',
        WAIT,
      );
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE attempts > 1 OR last_error IS NOT NULL OR state <> 'done')::int AS failed, count(*)::int AS n,
                string_agg(DISTINCT state || ' ' || attempts || ' ' || coalesce(last_error, ''), '; ') AS seen
         FROM rowcast.deliveries WHERE subscription IN ('cursor', 'filtered')`,
      );
      assert.equal(rows[0].failed, 0, `no delivery row records a failed attempt (rows: ${rows[0].seen})`);
      assert.ok(rows[0].n < 500, `rows only for what was handed back (${rows[0].n})`);
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT rowcast.cursor_position('cursor') >= max(seq) AS passed, (SELECT count(*) FROM rowcast.cursor_leases WHERE subscription = 'cursor') AS open
           FROM rowcast.messages WHERE topic = 'orders'`,
        );
        return rows[0].passed && Number(rows[0].open) === 0;
      }, 'the cursor passed every message and holds no range');
    },
  );

  test('apply filter policies at delivery', TEST, async () => {
    await db.pool.query(`UPDATE orders SET note = 'updated' WHERE id <= 20`);
    await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series(501, 520) g`);
    const inserted = await eventually(async () => {
      const m = await messagesOf(501, 520);
      return m.size === 20 && m;
    }, 'routing');
    await eventually(() => receivedAll(receivers.filtered, inserted), 'the filtered cursor received the inserts', WAIT);
    // The rows subscription got the updates, so the filtered cursor had them in its ranges too.
    await eventually(
      () => delivered(receivers.rows).size >= 540,
      'the updates delivered to the rows subscription',
      WAIT,
    );
    await eventually(async () => {
      const { rows } = await db.pool.query(
        `SELECT rowcast.cursor_position('filtered') >= max(seq) AS passed FROM rowcast.messages WHERE topic = 'orders'`,
      );
      return rows[0].passed;
    }, 'the filtered cursor passed the updates');
    const ops = receivers.filtered.requests.map((r) => r.json.body?.op ?? r.json.op);
    assert.ok(ops.length >= 520, `${ops.length} deliveries`);
    assert.deepEqual([...new Set(ops)], ['INSERT'], 'only inserts pass {"op": ["INSERT"]}');
  });

  test(
    'write a row for a failed attempt, retry it from there, and send the dead to the dead-letter topic',
    TEST,
    async () => {
      const failOnce = new Set<string>();
      receivers.flaky.reply = (r) => {
        const key = r.json.body?.key?.id ?? r.json.key?.id;
        if (key === 601 && !failOnce.has('601')) {
          failOnce.add('601');
          return { status: 503 };
        }
        if (key === 603 && !failOnce.has('603')) {
          failOnce.add('603');
          return 'reset';
        }
        if (key === 602) return { status: 500 };
        return { status: 200 };
      };
      await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series(600, 610) g`);
      const ids = await eventually(async () => {
        const m = await messagesOf(600, 610);
        return m.size === 11 && m;
      }, 'routing');
      const retried = await eventually(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT state, attempts, jsonb_array_length(attempt_log) AS logged FROM rowcast.deliveries WHERE subscription = 'flaky' AND message_id = $1`,
            [ids.get(601)],
          );
          return rows[0]?.state === 'done' && rows[0];
        },
        'the failed attempt retried from its row',
        WAIT,
      );
      assert.equal(retried.attempts, 2);
      assert.equal(retried.logged, 2, 'both attempts in the attempt log');
      // A cursor's failed attempt keeps what was sent and what came back, as a row's does; with no response (the
      // connection reset), what was sent.
      const logs = await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT m.id::text AS message, d.attempt_log -> 0 AS first FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
            WHERE d.subscription = 'flaky' AND d.message_id = ANY ($1::uuid[]) AND d.state = 'done'`,
          [[ids.get(601), ids.get(603)]],
        );
        return rows.length === 2 && rows;
      }, 'the reset attempt retried from its row');
      const firstOf = (id: string | undefined) => logs.find((r) => r.message === id)?.first;
      assert.equal(firstOf(ids.get(601))?.request?.headers?.['webhook-id'], ids.get(601));
      assert.equal(firstOf(ids.get(601))?.response?.status, 503);
      assert.equal(firstOf(ids.get(603))?.request?.headers?.['webhook-id'], ids.get(603));
      assert.equal(firstOf(ids.get(603))?.response, undefined);
      const dead = await eventually(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT state, attempts FROM rowcast.deliveries WHERE subscription = 'flaky' AND message_id = $1`,
            [ids.get(602)],
          );
          return rows[0]?.state === 'dead' && rows[0];
        },
        'the failing delivery went dead',
        WAIT,
      );
      assert.equal(dead.attempts, 3);
      await eventually(async () => {
        const { rows } = await db.pool.query(`SELECT body FROM rowcast.messages WHERE topic = 'dead'`);
        return rows.some((r) => r.body.includes(ids.get(602)!));
      }, 'the dead letter published');
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'flaky' AND message_id = ANY ($1::uuid[])`,
        [[...ids.values()]],
      );
      assert.equal(rows[0].n, 3, 'rows only for the three messages that failed');
      for (const [key, id] of ids)
        if (key !== 602) assert.ok(delivered(receivers.flaky).has(id), `message ${key} delivered`);
      receivers.flaky.reply = () => ({ status: 200 });
    },
  );

  test('share a cursor between two processes, and lose nothing when one stops mid-range', TEST, async () => {
    const second = await startTestRowcast(db.url);
    try {
      for (let i = 0; i < 20; i++)
        await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series($1::int, $1 + 99) g`, [
          1000 + i * 100,
        ]);
    } finally {
      await second.stop();
    }
    const ids = await eventually(
      async () => {
        const m = await messagesOf(1000, 2999);
        return m.size === 2000 && m;
      },
      'routing of 2,000 rows',
      WAIT,
    );
    await eventually(
      () => receivedAll(receivers.cursor, ids),
      'every message delivered through the shared cursor',
      WAIT,
    );
  });

  test('switch to rows and back while rows are written, without losing a message', TEST, async () => {
    let writing = true;
    let next = 5000;
    const writer = (async () => {
      while (writing) {
        await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series($1::int, $1 + 9) g`, [next]);
        next += 10;
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await applyConfig(db.pool, config({ cursor: false }));
      await new Promise((r) => setTimeout(r, 500));
      await eventually(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM rowcast.cursors WHERE subscription = 'cursor'`,
          );
          return rows[0].n === 0;
        },
        'the switched-off cursor drained and went',
        WAIT,
      );
      await applyConfig(db.pool, config());
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      writing = false;
      await writer;
    }
    const ids = await eventually(
      async () => {
        const m = await messagesOf(5000, next - 1);
        return m.size === next - 5000 && m;
      },
      'routing',
      WAIT,
    );
    await eventually(
      () => receivedAll(receivers.cursor, ids),
      `all ${ids.size} messages written across the switches delivered`,
      WAIT,
    );
  });

  test('count what a paused cursor has not passed as pending, and deliver it on resume', TEST, async () => {
    await pauseSubscription(db.pool, 'cursor');
    // Keys past any the switch test's writer reaches (it writes from 5000 on for as long as the switches take).
    await db.pool.query(`INSERT INTO orders SELECT g, 'n' FROM generate_series(900000, 900024) g`);
    const ids = await eventually(async () => {
      const m = await messagesOf(900000, 900024);
      return m.size === 25 && m;
    }, 'routing');
    const paused = (await getStatus(db.pool)).subscriptions.find((s) => s.name === 'cursor')!;
    assert.equal(paused.pending + paused.inFlight, 25, 'the 25 messages past its cursor');
    assert.ok(paused.oldestPendingMs !== null);
    assert.ok((await getLag(db.pool)).deliveries.pending >= 25);
    await resumeSubscription(db.pool, 'cursor');
    await eventually(() => receivedAll(receivers.cursor, ids), 'delivered after resume', WAIT);
    await eventually(async () => {
      const s = (await getStatus(db.pool)).subscriptions.find((s) => s.name === 'cursor')!;
      return s.pending + s.inFlight === 0;
    }, 'nothing pending once the cursor passed them');
  });

  test('accept a cursor on a FIFO topic (migration 032; test/e2e/cursor-fifo.test.ts delivers through one)', () => {
    const config = parseConfig(
      {
        topics: { 'ordered.fifo': { fifo: true } },
        subscriptions: {
          ordered: { topic: 'ordered.fifo', protocol: 'http', endpoint: receivers.rows.url, cursor: true },
        },
      },
      'test config',
    );
    assert.equal(config.subscriptions.ordered?.cursor, true);
  });
});

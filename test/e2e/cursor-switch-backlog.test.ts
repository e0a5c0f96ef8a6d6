import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apply, getDelivery, parseConfig, type RowcastConfigInput, type RowcastRuntime } from '../../src/index.js';
import { searchDeliveries } from '../../src/admin/inspect/delivery-search.js';
import { routeEvents } from '../../src/routing/route-events.js';
import { claimDeliveries, completeDeliveries } from '../../src/delivery/delivery-store.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/**
 * Switching a subscription from rows to a cursor takes its backlog along (docs/architecture.md, "Cursors",
 * "Switching"): the pending rows never attempted after its last attempted one are deleted and the cursor starts just
 * before them, so each of their messages is delivered once, by the cursor, under its id. Rows in flight, retrying,
 * dead or done stay rows and the cursor starts after the last of them; a claim that races the switch keeps its row
 * (its message may come twice, never not at all); messages routed before the subscription existed are not sent; a
 * FIFO backlog stays rows and is delivered in order. Backlogs are built with no process running, so that the rows
 * keep the states each test gives them (with the worker's own claim and result statements).
 */
const TEST = { timeout: patient(120_000) };
const WAIT = patient(60_000);

let db: TestDatabase;
let rowcast: RowcastRuntime | undefined;
const receivers = {} as Record<'moving' | 'mixed' | 'ordered' | 'racing' | 'doubled', WebhookReceiver>;

function config(
  opts: {
    subscribed?: boolean;
    cursor?: boolean;
    mixedCursor?: boolean;
    racingCursor?: boolean;
    doubled?: boolean;
  } = {},
): RowcastConfigInput {
  const { subscribed = true, cursor = false, mixedCursor = false, racingCursor = false, doubled = false } = opts;
  return {
    topics: { a: {}, b: {}, c: { fifo: true }, d: {}, e: {} },
    captures: {
      a: { table: 'a', topic: 'a' },
      b: { table: 'b', topic: 'b' },
      c: { table: 'c', topic: 'c', operations: ['INSERT', 'UPDATE'] },
      d: { table: 'd', topic: 'd' },
      e: { table: 'e', topic: 'e' },
    },
    subscriptions: subscribed
      ? {
          moving: { topic: 'a', protocol: 'http', endpoint: receivers.moving.url, cursor },
          ordered: { topic: 'c', protocol: 'http', endpoint: receivers.ordered.url, cursor, maxConcurrency: 8 },
          mixed: {
            topic: 'b',
            protocol: 'http',
            endpoint: receivers.mixed.url,
            cursor: mixedCursor,
            deliveryPolicy: { minDelay: '50ms', maxDelay: '100ms', maxAttempts: 2 },
          },
          racing: { topic: 'd', protocol: 'http', endpoint: receivers.racing.url, cursor: racingCursor },
          doubled: { topic: 'e', protocol: 'http', endpoint: receivers.doubled.url, cursor: doubled },
        }
      : {},
  };
}

const keyOf = (r: ReceivedRequest) => (r.json?.body?.key?.id ?? r.json?.key?.id) as number | undefined;

/** Per message id, how often the receiver answered it with a 2xx. */
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
 * The messages of a topic by their row's key: id and seq, in seq order. Read from the topic's log: its message rows,
 * and its segments' entries where routing wrote segments (migration 042).
 */
async function messagesOf(topic: string): Promise<{ key: number; id: string; seq: number; v: number | null }[]> {
  const { rows } = await db.pool.query(
    `SELECT (e.key ->> 'id')::int AS key, m.id::text, m.seq::int, (e.after ->> 'v')::int AS v
       FROM rowcast.log_messages($1, 0, 9223372036854775807) m JOIN rowcast.events e ON e.id = m.event_id ORDER BY m.seq`,
    [topic],
  );
  return rows;
}

/** Routes every captured event, as a running process would (none runs while a backlog is built). */
async function routeAll(): Promise<void> {
  while ((await routeEvents(db.pool, 500)).events > 0);
}

async function rowsOf(subscription: string): Promise<{ key: number; state: string; attempts: number }[]> {
  const { rows } = await db.pool.query(
    `SELECT (e.key ->> 'id')::int AS key, d.state, d.attempts FROM rowcast.deliveries d
       JOIN rowcast.messages m ON m.id = d.message_id JOIN rowcast.events e ON e.id = m.event_id
      WHERE d.subscription = $1 ORDER BY m.seq, d.id`,
    [subscription],
  );
  return rows;
}

/** Stops the test's process (gracefully: nothing stays in flight), so that rows keep the states a test gives them. */
async function stopProcess(): Promise<void> {
  await rowcast?.stop();
  rowcast = undefined;
}

async function leasedTo(subscription: string): Promise<number | undefined> {
  const { rows } = await db.pool.query(`SELECT leased_to::int FROM rowcast.cursors WHERE subscription = $1`, [
    subscription,
  ]);
  return rows[0]?.leased_to;
}

before(async () => {
  db = await createTestDatabase();
  for (const name of ['moving', 'mixed', 'ordered', 'racing', 'doubled'] as const)
    receivers[name] = await WebhookReceiver.start();
  await db.pool.query(`CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
                       CREATE TABLE c (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE d (id int PRIMARY KEY); CREATE TABLE e (id int PRIMARY KEY)`);
  await applyConfig(db.pool, config({ subscribed: false }));
});

after(async () => {
  await rowcast?.stop();
  for (const r of Object.values(receivers)) await r?.close();
  await db?.drop();
});

describe('switching a subscription with a backlog to a cursor', () => {
  test(
    'moves its never-attempted rows onto the cursor: each message delivered once, by the cursor, under its id',
    TEST,
    async () => {
      // Routed before the subscription existed: it never gets these, neither as rows nor through the cursor.
      await db.pool.query(`INSERT INTO a SELECT g FROM generate_series(1, 10) g`);
      await routeAll();
      await applyConfig(db.pool, config());
      // The backlog, with no process to deliver it: 300 pending rows, none attempted. On the FIFO topic, 5 groups
      // of 6 versions each.
      await db.pool.query(`INSERT INTO a SELECT g FROM generate_series(11, 310) g`);
      await db.pool.query(`INSERT INTO c SELECT g, 0 FROM generate_series(1, 5) g`);
      for (let v = 1; v <= 5; v++) await db.pool.query(`UPDATE c SET v = $1`, [v]);
      await routeAll();
      const rows = await rowsOf('moving');
      assert.equal(rows.length, 300);
      assert.ok(rows.every((r) => r.state === 'pending' && r.attempts === 0));

      const plan = await apply(db.pool, parseConfig(config({ cursor: true }), 'test config'), { dryRun: true });
      const lines = plan.steps.map((s) => s.summary);
      assert.ok(
        lines.some(
          (l) => l.startsWith('~ subscription moving: reads its topic through a cursor') && /moves its backlog/.test(l),
        ),
        `the plan says the backlog moves onto the cursor: ${lines.join(' | ')}`,
      );
      assert.ok(
        lines.some(
          (l) =>
            l.startsWith('~ subscription ordered: reads its topic through a cursor') && !/moves its backlog/.test(l),
        ),
        'a FIFO backlog stays rows',
      );
      assert.equal((await rowsOf('moving')).length, 300, 'a dry run moves nothing');

      await applyConfig(db.pool, config({ cursor: true }));
      const messages = await messagesOf('a');
      const backlog = messages.filter((m) => m.key > 10);
      assert.equal(backlog.length, 300);
      assert.deepEqual(await rowsOf('moving'), [], 'the backlog rows are gone');
      assert.equal(await leasedTo('moving'), backlog[0]!.seq - 1, 'the cursor starts just before the first of them');

      rowcast = await startTestRowcast(db.url);
      await eventually(
        () => backlog.every((m) => delivered(receivers.moving).has(m.id)),
        'the backlog delivered through the cursor',
        WAIT,
      );
      // Messages routed after the switch follow through the cursor.
      await db.pool.query(`INSERT INTO a SELECT g FROM generate_series(311, 320) g`);
      const later = await eventually(async () => {
        const m = (await messagesOf('a')).filter((x) => x.key > 310);
        return m.length === 10 && m;
      }, 'routing');
      await eventually(
        () => later.every((m) => delivered(receivers.moving).has(m.id)),
        'the later messages delivered',
        WAIT,
      );
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT rowcast.cursor_position('moving') >= max(seq) AS passed FROM rowcast.log_messages('a', 0, 9223372036854775807)`,
        );
        return rows[0].passed;
      }, 'the cursor passed every message');
      const got = delivered(receivers.moving);
      for (const m of [...backlog, ...later]) assert.equal(got.get(m.id), 1, `message ${m.key} delivered once`);
      assert.equal(got.size, 310, 'nothing routed before the subscription existed was sent');
      // The admin API reads a moved message as the cursor's delivery, as it does a later one; one routed before the
      // subscription existed is no delivery of it.
      for (const m of [backlog[0]!, backlog.at(-1)!, later[0]!])
        assert.equal((await getDelivery(db.pool, `moving@${m.seq}`)).state, 'done', `message ${m.key}`);
      await assert.rejects(
        getDelivery(db.pool, `moving@${messages[0]!.seq}`),
        /came before moving read through a cursor/,
      );
      let listed = 0;
      for (let cursor: string | undefined; ;) {
        const page = await searchDeliveries(db.pool, { subscription: 'moving', limit: 200, cursor });
        listed += page.items.length;
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      assert.equal(listed, 310, 'the list holds every message it delivered, and nothing before');
      assert.ok(
        receivers.moving.requests.every((r) => r.status === 200 && keyOf(r)! > 10),
        'no attempt failed, none of the first ten',
      );
      // Rows only for work the cursor handed back unsent, which a loaded machine may do (queued past its lease): each
      // then sent once, from its row.
      const handedBack = await rowsOf('moving');
      assert.ok(
        handedBack.every((r) => r.state === 'done'),
        `rows only for what was handed back (${JSON.stringify(handedBack)})`,
      );
    },
  );

  test('keeps a FIFO backlog as rows and delivers every group in order, then the cursor behind it', TEST, async () => {
    const backlog = await messagesOf('c');
    assert.equal(backlog.length, 30);
    // The switch moved nothing on the FIFO topic: its cursor started at the log's end (all 30 rows stayed rows).
    const { rows } = await db.pool.query(
      `SELECT (SELECT leased_to FROM rowcast.cursors WHERE subscription = 'ordered') >= $1::bigint AS at_end`,
      [backlog.at(-1)!.seq],
    );
    assert.ok(rows[0].at_end, 'the FIFO cursor was not rewound');
    for (let v = 6; v <= 8; v++) await db.pool.query(`UPDATE c SET v = $1`, [v]);
    await eventually(
      () => receivers.ordered.requests.filter((r) => r.status === 200).length >= 45,
      'the backlog and the later versions delivered',
      WAIT,
    );
    await eventually(async () => {
      const { rows } = await db.pool.query(
        `SELECT NOT EXISTS (SELECT 1 FROM rowcast.deliveries WHERE subscription = 'ordered' AND state <> 'done')
                AND rowcast.cursor_position('ordered') >= (SELECT max(seq) FROM rowcast.log_messages('c', 0, 9223372036854775807)) AS done`,
      );
      return rows[0].done;
    }, 'every row done and the cursor past every message');
    for (let id = 1; id <= 5; id++) {
      const versions = receivers.ordered.requests
        .filter((r) => r.status === 200 && keyOf(r) === id)
        .map((r) => r.json.body?.after?.v ?? r.json.after?.v);
      assert.deepEqual(versions, [0, 1, 2, 3, 4, 5, 6, 7, 8], `group ${id}: every version once, in order`);
    }
    const counts = [...delivered(receivers.ordered).values()];
    assert.equal(counts.length, 45);
    assert.ok(
      counts.every((n) => n === 1),
      'no message twice',
    );
  });

  test(
    'leaves rows that were attempted, in flight, retrying, dead or done as rows, and moves only the backlog after the last',
    TEST,
    async () => {
      // No process runs while the rows get their states: the worker's own claim and result statements set them.
      await stopProcess();
      await db.pool.query(`INSERT INTO b SELECT g FROM generate_series(1, 5) g`);
      await routeAll();
      const first = await claimDeliveries(db.pool, new Map([['mixed', 5]]), 60_000, 'test');
      assert.equal(first.length, 5);
      await db.pool.query(`INSERT INTO b SELECT g FROM generate_series(10, 59) g`);
      await routeAll();
      await db.pool.query(
        `UPDATE rowcast.deliveries d SET available_at = now() - interval '1 hour' FROM rowcast.messages m, rowcast.events e
          WHERE d.subscription = 'mixed' AND m.id = d.message_id AND e.id = m.event_id AND (e.key ->> 'id')::int = 30`,
      );
      const middle = await claimDeliveries(db.pool, new Map([['mixed', 1]]), 60_000, 'test');
      const messages = await messagesOf('b');
      const keyOfId = new Map(messages.map((m) => [m.id, m.key]));
      const claimed = new Map([...first, ...middle].map((c) => [keyOfId.get(c.message.id)!, c]));
      assert.deepEqual([...claimed.keys()], [1, 2, 3, 4, 5, 30]);
      const result = (key: number, state: 'done' | 'pending' | 'dead', availableAt?: Date) => ({
        deliveryId: claimed.get(key)!.deliveryId,
        attempt: 1,
        lease: claimed.get(key)!.lease,
        state,
        availableAt,
        status: state === 'done' ? 200 : 503,
      });
      const soon = new Date(Date.now() + 2000);
      // 1 dead, 2 and 30 retrying (due in 2 s), 3 in flight (its lease runs out in 3 s), 4 and 5 delivered.
      await completeDeliveries(db.pool, [
        result(1, 'dead'),
        result(2, 'pending', soon),
        result(30, 'pending', soon),
        result(4, 'done'),
        result(5, 'done'),
      ]);
      await db.pool.query(
        `UPDATE rowcast.deliveries SET available_at = now() + interval '3 seconds' WHERE lease = $1`,
        [claimed.get(3)!.lease],
      );

      await applyConfig(db.pool, config({ cursor: true, mixedCursor: true }));
      const rows = await rowsOf('mixed');
      const stayed = [
        [1, 'dead', 1],
        [2, 'pending', 1],
        [3, 'in_flight', 1],
        [4, 'done', 1],
        [5, 'done', 1],
        ...messages.filter((m) => m.key >= 10 && m.key < 30).map((m) => [m.key, 'pending', 0]),
        [30, 'pending', 1],
      ];
      assert.deepEqual(
        rows.map((r) => [r.key, r.state, r.attempts]),
        stayed,
        'rows attempted stayed rows, and so did the never-attempted ones before the last of them',
      );
      const moved = messages.filter((m) => m.key > 30);
      assert.equal(moved.length, 29);
      assert.equal(await leasedTo('mixed'), moved[0]!.seq - 1, 'the cursor starts after the last attempted row');

      rowcast = await startTestRowcast(db.url);
      const sent = messages.filter((m) => ![1, 4, 5].includes(m.key));
      await eventually(
        () => sent.every((m) => delivered(receivers.mixed).has(m.id)),
        'every message delivered but the dead and the done ones',
        WAIT,
      );
      await eventually(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT NOT EXISTS (SELECT 1 FROM rowcast.deliveries WHERE subscription = 'mixed' AND state IN ('pending', 'in_flight'))
                    AND rowcast.cursor_position('mixed') >= (SELECT max(seq) FROM rowcast.log_messages('b', 0, 9223372036854775807)) AS done`,
          );
          return rows[0].done;
        },
        'the rows done and the cursor past every message',
        WAIT,
      );
      const got = delivered(receivers.mixed);
      for (const m of messages) assert.equal(got.get(m.id) ?? 0, [1, 4, 5].includes(m.key) ? 0 : 1, `message ${m.key}`);
      assert.equal(receivers.mixed.requests.length, sent.length, 'no attempt failed or was repeated');
    },
  );

  test(
    'keeps a row a claim took while the switch ran: the claim commits first, the switch leaves its row, never loses it',
    TEST,
    async () => {
      await stopProcess();
      await db.pool.query(`INSERT INTO d SELECT g FROM generate_series(1, 20) g`);
      await routeAll();
      await db.pool.query(
        `UPDATE rowcast.deliveries d SET available_at = now() - interval '1 hour' FROM rowcast.messages m, rowcast.events e
          WHERE d.subscription = 'racing' AND m.id = d.message_id AND e.id = m.event_id AND (e.key ->> 'id')::int = 10`,
      );
      const claimant = await db.pool.connect();
      let switched: Promise<unknown> | undefined;
      try {
        await claimant.query('BEGIN');
        const claimed = await claimDeliveries(claimant, new Map([['racing', 1]]), 1000, 'test');
        assert.equal(claimed.length, 1);
        // The switch reads the backlog before the claim commits, and waits for the claimed row's lock.
        switched = applyConfig(db.pool, config({ cursor: true, mixedCursor: true, racingCursor: true }));
        await eventually(async () => {
          // The statement's text as pg_stat_activity keeps it (its first KB): the cursor step's opening.
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH dropped AS (DELETE FROM rowcast.cursor_leases%'`,
          );
          return rows[0].n > 0;
        }, 'the switch waiting for the claimed row');
        await claimant.query('COMMIT');
      } finally {
        // Committed above; after a failure, the switch must not wait for this transaction forever.
        await claimant.query('ROLLBACK').catch(() => {});
        claimant.release();
      }
      await switched;
      const messages = await messagesOf('d');
      assert.deepEqual(
        (await rowsOf('racing')).map((r) => [r.key, r.state]),
        [[10, 'in_flight']],
        'the claimed row stayed a row; the others moved',
      );
      // The cursor starts before the claimed row's message too: it may be sent twice, never not at all.
      assert.equal(await leasedTo('racing'), messages[0]!.seq - 1);
      rowcast = await startTestRowcast(db.url);
      // The test's claim sends nothing: once its lease expires, the process claims the row again and sends it.
      await eventually(
        async () =>
          messages.every((m) => delivered(receivers.racing).has(m.id)) &&
          (await rowsOf('racing')).every((r) => r.state === 'done'),
        'every message delivered, the claimed row by the process once its lease expired',
        WAIT,
      );
      const got = delivered(receivers.racing);
      for (const m of messages) {
        const n = got.get(m.id)!;
        // The claimed row's message by its row and by the cursor (once, if the cursor handed it back to that row).
        if (m.key === 10) assert.ok(n === 1 || n === 2, `message 10 delivered ${n} times`);
        else assert.equal(n, 1, `message ${m.key} delivered once`);
      }
    },
  );
  test('ends the moved range at a message that has a finished row beside its pending one', TEST, async () => {
    await stopProcess();
    await db.pool.query(`INSERT INTO e SELECT g FROM generate_series(1, 10) g`);
    await routeAll();
    // A second row of one message, delivered: as a cursor's failed attempt beside a row routed as it switched
    // leaves one, once its retry succeeded.
    await db.pool.query(
      `INSERT INTO rowcast.deliveries (message_id, subscription, state, attempts, delivered_at)
         SELECT m.id, 'doubled', 'done', 2, now() FROM rowcast.messages m JOIN rowcast.events e ON e.id = m.event_id
          WHERE m.topic = 'e' AND (e.key ->> 'id')::int = 6`,
    );
    await applyConfig(db.pool, config({ cursor: true, mixedCursor: true, racingCursor: true, doubled: true }));
    const messages = await messagesOf('e');
    assert.deepEqual(
      (await rowsOf('doubled')).map((r) => [r.key, r.state]),
      [1, 2, 3, 4, 5, 6, 6].map((key, i) => [key, i === 6 ? 'done' : 'pending']),
      'the rows up to the message with a finished row stayed; those after it moved',
    );
    assert.equal(await leasedTo('doubled'), messages.find((m) => m.key === 7)!.seq - 1);
    rowcast = await startTestRowcast(db.url);
    await eventually(
      async () =>
        messages.every((m) => delivered(receivers.doubled).has(m.id)) &&
        (await rowsOf('doubled')).every((r) => r.state === 'done'),
      'every message delivered',
      WAIT,
    );
    const got = delivered(receivers.doubled);
    for (const m of messages) assert.equal(got.get(m.id), 1, `message ${m.key} delivered once`);
  });
});

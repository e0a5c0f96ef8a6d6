import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  getDelivery,
  listEvents,
  listTopics,
  replayCapture,
  resendDelivery,
  type RowcastRuntime,
} from '../../src/index.js';
import { searchDeliveries } from '../../src/admin/inspect/delivery-search.js';
import { completeLogRanges, leaseLogRanges } from '../../src/delivery/cursor-store.js';
import { routeEvents, SEGMENTS_ONLY_SQL } from '../../src/routing/route-events.js';
import { applyRetention } from '../../src/store/retention.js';
import { HeldEntries, INITIAL_HORIZON, type LeasedMessage, type LogHorizon } from '../../src/store/log-leases.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { openSse } from '../support/sse-client.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * Segments (migration 042): on a topic whose subscriptions all read through cursors, routing writes one row per
 * batch — the seqs it drew and their events — instead of a message row per event, and the cursor builds each
 * message from its event. The store's statements are called as the delivery worker calls them, then the chain
 * runs with a failing subscriber.
 */
let db: TestDatabase;

const ENDPOINT = 'http://127.0.0.1:9/';

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY)');
  await configure();
  await db.pool.query('UPDATE rowcast.installation SET log_segments = true');
});

after(() => db?.drop());

/**
 * Topic `items` (with these settings) read through the cursor `reader` (and, with `copies`, through rows too), and
 * `orders` through rows.
 */
function configure(
  items: { fifo?: boolean; maxMessageSize?: number; largeMessages?: 'reject' | 'claim-check' } = {},
  reader: { endpoint?: string; deliveryPolicy?: { maxAttempts: number; minDelay: string; maxDelay: string } } = {},
  copies = false,
  second = false,
) {
  return applyConfig(db.pool, {
    topics: { items, orders: {} },
    captures: { items: { table: 'items', topic: 'items' }, orders: { table: 'orders', topic: 'orders' } },
    subscriptions: {
      reader: { topic: 'items', protocol: 'http', endpoint: ENDPOINT, cursor: true, ...reader },
      // A subscription on rows: its topic keeps a message row per event.
      rows: { topic: 'orders', protocol: 'http', endpoint: ENDPOINT, cursor: false },
      ...(copies ? { copies: { topic: 'items', protocol: 'http', endpoint: ENDPOINT, cursor: false } } : {}),
      ...(second ? { second: { topic: 'items', protocol: 'http', endpoint: ENDPOINT, cursor: true } } : {}),
    },
  });
}

async function routeAll(): Promise<void> {
  while ((await routeEvents(db.pool, 100)).events);
}

let horizon: LogHorizon = INITIAL_HORIZON;
async function lease(
  n = 100,
  {
    once = false,
    cursors = ['reader'],
    held = undefined as HeldEntries | undefined,
    of = null as Set<string> | null,
  } = {},
): Promise<LeasedMessage[]> {
  const got: LeasedMessage[] = [];
  // The first lease may only take the barrier; the second hands out what it settled. `once`: no second lease after
  // one that handed out messages (n of them at most).
  for (let i = 0; i < 2 && !(once && got.length); i++) {
    const wanted = new Map(cursors.map((name) => [name, n]));
    const leased = await leaseLogRanges(db.pool, wanted, 60_000, 'test', horizon, held?.windows(of));
    horizon = leased.horizon;
    got.push(...leased.messages);
  }
  return got;
}

const items = (messages: LeasedMessage[]) =>
  messages.map((m) => (JSON.parse(m.delivery.message.body) as { after: { id: number } }).after.id);

async function counts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM rowcast.messages WHERE topic = 'items') AS messages,
            (SELECT count(*)::int FROM rowcast.log_segments) AS segments,
            (SELECT count(*)::int FROM rowcast.events WHERE topic = 'items') AS events`,
  );
  return rows[0] as { messages: number; segments: number; events: number };
}

describe('segments instead of message rows', () => {
  test('routing writes one segment per batch, and the cursor reads its messages as routing would have made them', async () => {
    await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g`);
    await db.pool.query('INSERT INTO orders VALUES (1)');
    await routeAll();
    assert.deepEqual(await counts(), { messages: 0, segments: 1, events: 5 });
    const { rows: copied } = await db.pool.query(
      `SELECT count(*)::int AS n FROM rowcast.messages WHERE topic = 'orders'`,
    );
    assert.equal(copied[0].n, 1, 'a topic with a subscription on rows keeps its message row');

    const leased = await lease();
    assert.deepEqual(items(leased), [1, 2, 3, 4, 5], 'every event once, in order');
    // The id and body routing would have given the message row: the id derived from the event, the body by the
    // same definition routing uses, the attributes and time of the routing.
    const { rows: expected } = await db.pool.query(
      `SELECT rowcast.derived_uuid((SELECT id FROM rowcast.installation), 'message/' || e.id)::text AS id,
              rowcast.event_message_body(e) AS body, s.seq::text
         FROM rowcast.events e JOIN LATERAL unnest((SELECT seqs FROM rowcast.log_segments), (SELECT event_ids FROM rowcast.log_segments)) s(seq, event_id)
           ON s.event_id = e.id
        WHERE e.topic = 'items' ORDER BY s.seq`,
    );
    assert.deepEqual(
      leased.map((m) => [m.delivery.message.id, m.delivery.message.body, m.delivery.deliveryId]),
      expected.map((r) => [r.id, r.body, `reader@${r.seq}`]),
    );
    assert.deepEqual(leased[0]!.delivery.message.attributes, {
      op: 'INSERT',
      schema: 'public',
      table: 'items',
      capture: 'items',
    });
    const done = await completeLogRanges(db.pool, [{ range: leased[0]!.range, failed: [], handedBack: [] }]);
    assert.equal(done.completed, 1);
    assert.deepEqual(await lease(), [], 'nothing twice');
  });

  test("the process builds an entry's message byte for byte as SQL builds its row", async () => {
    // Events as odd as captures make them: escapes, control characters and non-ASCII text in names and values, NULL
    // images, a `changed` list with quotes and a NULL, another source's own `source`, a trace. Lease returns their
    // columns, the process builds the id and body (migration 043); a failed entry's row is built by SQL.
    await db.pool.query(
      `INSERT INTO rowcast.events (capture, topic, op, schema_name, table_name, key, before, after, changed, trace, source)
       VALUES ('items', 'items', 'UPDATE', 'we"ird', E'tab\\tle\\u00e9', '{"id": 30}',
               $1::jsonb, '{"id": 30, "name": "é∑😀 \\"q\\" \\\\ \\u0001", "n": 1.50, "big": 12345678901234567890}', ARRAY['name', 'we"ird', NULL],
               '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', NULL),
              ('items', 'items', 'DELETE', 'public', 'items', NULL, NULL, NULL, NULL, NULL,
               '{"kind": "mysql", "server": 1, "database": "shop", "table": "items", "position": "mariadb-bin.000001:4"}'),
              ('items', 'items', 'INSERT', 'public', 'items', '{"id": 31}', NULL, $2::jsonb, '{}', NULL, NULL)`,
      [
        JSON.stringify({ id: 30, name: 'line\nbreak\u001b', nested: [null, true, { x: '' }] }),
        JSON.stringify({ id: 31 }),
      ],
    );
    await routeAll();
    const leased = await lease();
    const { rows: expected } = await db.pool.query(
      `SELECT rowcast.derived_uuid((SELECT id FROM rowcast.installation), 'message/' || e.id)::text AS id,
              rowcast.event_message_body(e) AS body, rowcast.event_message_attributes(e) AS attributes
         FROM rowcast.events e WHERE e.topic = 'items' AND e.id > (SELECT max(id) - 3 FROM rowcast.events) ORDER BY e.id`,
    );
    assert.equal(leased.length, 3);
    assert.deepEqual(
      leased.map((m) => [m.delivery.message.id, m.delivery.message.body, m.delivery.message.attributes]),
      expected.map((r) => [r.id, r.body, r.attributes]),
    );
    await completeLogRanges(db.pool, [{ range: leased[0]!.range, failed: [], handedBack: [] }]);
  });

  test('waits for a segment whose router has not committed, as for a message row', async () => {
    await db.pool.query(`INSERT INTO items VALUES (10, 'routed slowly')`);
    const slow = await db.pool.connect();
    try {
      await slow.query('BEGIN');
      // The router's statement has drawn its seq and written its segment, and not committed; a Publish to the topic
      // draws a higher seq and commits.
      assert.equal((await routeEvents(slow as unknown as TestDatabase['pool'], 100)).events, 1);
      await db.pool.query(`INSERT INTO rowcast.messages (topic, body) VALUES ('items', '{"after": {"id": 11}}')`);
      assert.deepEqual(items(await lease()), [], 'nothing past a seq whose transaction is still open');
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    const got = await lease();
    assert.deepEqual(items(got), [10, 11], 'both, in seq order, once the router committed');
    await completeLogRanges(db.pool, [{ range: got[0]!.range, failed: [], handedBack: [] }]);
  });

  test('a failed or handed-back message gets a message row, which the cursor does not read again', async () => {
    await db.pool.query(`INSERT INTO items VALUES (20, 'fails'), (21, 'handed back'), (22, 'sent')`);
    await routeAll();
    const got = await lease();
    assert.deepEqual(items(got), [20, 21, 22]);
    const [fails, handedBack] = got;
    const done = await completeLogRanges(db.pool, [
      {
        range: got[0]!.range,
        failed: [
          { messageId: fails!.delivery.message.id, result: { state: 'pending', status: 500, error: 'HTTP 500' } },
        ],
        handedBack: [{ messageId: handedBack!.delivery.message.id, started: false }],
      },
    ]);
    assert.equal(done.completed, 1);
    const { rows } = await db.pool.query(
      `SELECT m.id::text, m.seq::text, m.from_segment, m.body, d.state, d.attempts
         FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
        WHERE d.subscription = 'reader' ORDER BY m.seq`,
    );
    assert.deepEqual(
      rows,
      [fails!, handedBack!].map((m, i) => ({
        id: m.delivery.message.id,
        seq: m.delivery.deliveryId.split('@')[1],
        from_segment: true,
        body: m.delivery.message.body,
        state: 'pending',
        attempts: i === 0 ? 1 : 0,
      })),
      'rows of the same messages (id, seq, body), made from their events',
    );
    await db.pool.query(`INSERT INTO items VALUES (23, 'next')`);
    await routeAll();
    const next = await lease();
    assert.deepEqual(items(next), [23], 'the message rows made for the failures are not read by the cursor');
    await completeLogRanges(db.pool, [{ range: next[0]!.range, failed: [], handedBack: [] }]);
    await db.pool.query(`DELETE FROM rowcast.deliveries WHERE subscription = 'reader'`);
  });

  test('a topic made FIFO, or claim-check, after its segments were written still reads them', async () => {
    await db.pool.query(`INSERT INTO items VALUES (24, 'before FIFO'), (25, repeat('x', 2000))`);
    await routeAll();
    try {
      await configure({ fifo: true });
      const fifo = await lease();
      assert.deepEqual(items(fifo), [24, 25]);
      assert.deepEqual(
        fifo[0]!.fifo,
        { group: '{"id": 24}', held: false },
        'grouped by the row key, as routing groups',
      );
      await completeLogRanges(db.pool, [{ range: fifo[0]!.range, failed: [], handedBack: [], fifo: true }]);

      await db.pool.query(`UPDATE rowcast.cursors SET leased_to = leased_to - 2 WHERE subscription = 'reader'`);
      await configure({ maxMessageSize: 1024, largeMessages: 'claim-check' });
      const large = await lease();
      assert.deepEqual(items(large), [24, 25]);
      const { rows } = await db.pool.query(
        `SELECT id::text, from_segment, octet_length(body) > 1024 AS large FROM rowcast.messages
          WHERE topic = 'items' AND (body::jsonb -> 'after' ->> 'id')::int IN (24, 25)`,
      );
      assert.deepEqual(
        rows,
        [{ id: large[1]!.delivery.message.id, from_segment: true, large: true }],
        'the large one has the message row its link is served from',
      );
      await completeLogRanges(db.pool, [{ range: large[0]!.range, failed: [], handedBack: [] }]);
    } finally {
      await configure();
    }
  });

  test('a topic that gains a subscription on rows gets message rows from the next batch on; the cursor reads both', async () => {
    const itemOf = (id: number) =>
      db.pool.query(
        `SELECT (SELECT count(*)::int FROM rowcast.messages m
                  WHERE m.topic = 'items' AND (m.body::jsonb -> 'after' ->> 'id')::int = $1) AS rows,
                (SELECT count(*)::int FROM rowcast.log_segments g, unnest(g.event_ids) s(event_id)
                   JOIN rowcast.events e ON e.id = s.event_id WHERE (e.after ->> 'id')::int = $1) AS entries`,
        [id],
      );
    await db.pool.query(`INSERT INTO items VALUES (26, 'in a segment')`);
    await routeAll();
    try {
      await configure({}, {}, true);
      await db.pool.query(`INSERT INTO items VALUES (27, 'a row')`);
      await routeAll();
      assert.deepEqual((await itemOf(26)).rows, [{ rows: 0, entries: 1 }], 'routed before it: an entry');
      assert.deepEqual((await itemOf(27)).rows, [{ rows: 1, entries: 0 }], 'routed after it: a message row');
      const got = await lease();
      assert.deepEqual(items(got), [26, 27], 'the entry and the row, in seq order');
      await completeLogRanges(db.pool, [{ range: got[0]!.range, failed: [], handedBack: [] }]);
    } finally {
      await configure();
    }
    await db.pool.query(`INSERT INTO items VALUES (28, 'in a segment again')`);
    await routeAll();
    assert.deepEqual((await itemOf(28)).rows, [{ rows: 0, entries: 1 }], 'the rows subscription gone: an entry');
    const got = await lease();
    assert.deepEqual(items(got), [28]);
    await completeLogRanges(db.pool, [{ range: got[0]!.range, failed: [], handedBack: [] }]);
  });

  test('retention keeps a segment and its events until the cursor has passed it', async () => {
    await db.pool.query(`INSERT INTO items VALUES (30, 'kept')`);
    await routeAll();
    const before = await counts();
    await applyRetention(db.pool, 0, 0);
    const kept = await counts();
    assert.equal(kept.segments, 1, 'the segment the cursor has not passed stays');
    assert.equal(kept.events, 1, 'with its event');
    assert.ok(before.segments > 1 && before.events > 1);
    const got = await lease();
    assert.deepEqual(items(got), [30]);
    await applyRetention(db.pool, 0, 0);
    assert.equal((await counts()).segments, 1, 'leased, not passed: still kept');
    await completeLogRanges(db.pool, [{ range: got[0]!.range, failed: [], handedBack: [] }]);
    await applyRetention(db.pool, 0, 0);
    assert.deepEqual(await counts(), { messages: 0, segments: 0, events: 0 });
  });

  test('the delivery list pages a window of segments at a time, short where its filters skip entries', async () => {
    // A segment of three, then segments of one entry each: six inserts, a delete, an insert and a delete, so that a
    // window of two (pages of one) ends right above a delete.
    await db.pool.query(`INSERT INTO items VALUES (147, 'three'), (148, 'a'), (149, 'batch')`);
    await routeAll();
    for (const change of [150, 151, 152, 153, 154, 155, -152, 156, -154]) {
      await db.pool.query(
        change > 0 ? `INSERT INTO items VALUES ($1, 'one a batch')` : 'DELETE FROM items WHERE id = $1',
        [Math.abs(change)],
      );
      await routeAll();
    }
    const { rows: log } = await db.pool.query(
      `SELECT m.id::text, m.attributes ->> 'op' AS op FROM rowcast.log_messages('items', 0, 9223372036854775807) m
        WHERE m.seq > (SELECT leased_to FROM rowcast.cursors WHERE subscription = 'reader') ORDER BY m.seq DESC`,
    );
    assert.equal(log.length, 12);
    const walk = async (filter: { op?: string }) => {
      const got: string[] = [];
      let pages = 0;
      for (let cursor: string | undefined; pages < 50;) {
        const page = await searchDeliveries(db.pool, {
          subscription: 'reader',
          limit: 1,
          ...filter,
          ...(cursor ? { cursor } : {}),
        });
        pages++;
        got.push(...page.items.map((d) => d.messageId));
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      return { got: got.slice(0, log.length), pages };
    };
    assert.deepEqual(
      (await walk({})).got,
      log.map((r) => r.id),
      'pages of one: the whole log once, newest first',
    );
    const deletes = await walk({ op: 'delete' });
    assert.deepEqual(
      deletes.got,
      log.filter((r) => r.op === 'DELETE').map((r) => r.id),
      'filtered: the deletes once, newest first',
    );
    assert.ok(deletes.pages > 2, `windows below the deletes' segment were read a page each (${deletes.pages} pages)`);
    // What the cursor has not passed, counted from whole segments' entries where it can, as unnesting them counts.
    const backlog = async () => {
      const { rows } = await db.pool.query(
        `SELECT (SELECT row(b.pending, b.in_flight, b.oldest)::text FROM rowcast.cursor_backlog('reader') b) AS counted,
                (SELECT row(count(*) FILTER (WHERE u.seq > c.leased_to), count(*) FILTER (WHERE u.seq <= c.leased_to),
                            min(g.created_at))::text
                   FROM rowcast.cursors c, rowcast.log_segments g, unnest(g.seqs) u(seq)
                  WHERE c.subscription = 'reader' AND g.topic = 'items' AND u.seq > rowcast.cursor_position('reader')) AS unnested`,
      );
      assert.equal(rows[0].counted, rows[0].unnested);
      return rows[0].counted as string;
    };
    assert.match(await backlog(), /^\(12,0,/);
    const first = await lease(2, { once: true });
    assert.match(await backlog(), /^\(10,2,/, 'two of the segment of three leased, in flight');
    const got = [...first, ...(await lease())];
    assert.equal(got.length, 12);
    assert.match(await backlog(), /^\(0,12,/);
    await completeLogRanges(
      db.pool,
      [...new Map(got.map((m) => [m.range.fromSeq, m.range])).values()].map((range) => ({
        range,
        failed: [],
        handedBack: [],
      })),
    );
    await applyRetention(db.pool, 0, 0);
  });

  test('a range is counted and read from consecutive segments by slice, and from others whole, as the log holds it', async () => {
    // A topic's log as routing and other writers leave it (migration 043): segments of consecutive seqs, one whose
    // seqs another writer interleaved, and message rows between them.
    await db.pool.query(
      `INSERT INTO rowcast.log_segments (topic, first_seq, last_seq, seqs, event_ids, entries, events)
       SELECT 'sliced', min(g), max(g), array_agg(g ORDER BY g), array_agg(g ORDER BY g), count(*), int8range(1, 2)
         FROM generate_series(1, 1200) g GROUP BY (g - 1) / 400
       UNION ALL
       SELECT 'sliced', 1201, 1260, ARRAY[1201, 1210, 1230, 1260], ARRAY[1, 2, 3, 4], 4, int8range(1, 2)
       UNION ALL
       SELECT 'sliced', 1300, 1399, array_agg(g ORDER BY g), array_agg(g ORDER BY g), count(*), int8range(1, 2)
         FROM generate_series(1300, 1399) g;
       INSERT INTO rowcast.messages (topic, body, seq) OVERRIDING SYSTEM VALUE
       SELECT 'sliced', '{}', g FROM generate_series(1261, 1299, 3) g`,
    );
    try {
      const { rows } = await db.pool.query(
        // Each range against the whole log unnested and filtered (the entries' events are not needed here).
        `WITH whole AS (
           SELECT m.seq, false AS entry FROM rowcast.messages m WHERE m.topic = 'sliced'
           UNION ALL
           SELECT u.seq, true FROM rowcast.log_segments s, unnest(s.seqs) u(seq) WHERE s.topic = 'sliced')
         SELECT f, t, n FROM generate_series(0, 1400, 23) f, generate_series(1, 450, 37) n, unnest(ARRAY[1400, 1230, 410]) t
          WHERE (SELECT array_agg(s) FROM rowcast.log_seqs('sliced', f, t, n) s)
                IS DISTINCT FROM (SELECT array_agg(w.seq) FROM (SELECT w.seq FROM whole w WHERE w.seq > f AND w.seq <= t
                                                                ORDER BY w.seq LIMIT n) w)
             OR (SELECT array_agg(g.seq ORDER BY g.seq) FROM rowcast.segment_entries('sliced', f, t) g)
                IS DISTINCT FROM (SELECT array_agg(w.seq ORDER BY w.seq) FROM whole w WHERE w.entry AND w.seq > f AND w.seq <= t)`,
      );
      assert.deepEqual(rows, [], 'ranges whose count or entries differ from the whole log, filtered');
    } finally {
      await db.pool.query(`DELETE FROM rowcast.log_segments WHERE topic = 'sliced'`);
      await db.pool.query(`DELETE FROM rowcast.messages WHERE topic = 'sliced'`);
    }
  });
  test('a cursor leasing after another gets ids alone for the entries the process holds, and the same messages', async () => {
    // Fan-out across calls (migration 047): the process tells each lease the seqs whose messages it holds.
    await configure({}, {}, false, true);
    const ranges = (got: LeasedMessage[]) =>
      [...new Map(got.map((m) => [`${m.range.subscription}/${m.range.fromSeq}`, m.range])).values()].map((range) => ({
        range,
        failed: [],
        handedBack: [],
      }));
    try {
      await db.pool.query(`INSERT INTO items SELECT g, 'held ' || g FROM generate_series(300, 307) g`);
      await routeAll();
      const held = new HeldEntries();
      const first = await lease(100, { cursors: ['reader'], held });
      assert.equal(first.length, 8);
      const told = held.windows();
      assert.deepEqual(told.topics, ['items']);
      assert.equal(told.hi[0], first.at(-1)!.range.toSeq);

      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        const raw = async (known: typeof told) =>
          (
            await client.query(
              `SELECT l.event_id::text, l.event_op IS NOT NULL AS has_event
                 FROM rowcast.lease_log_ranges(ARRAY['second'], ARRAY[100], 60000, 'test', 0, NULL, '{}', false,
                                               $1::text[], $2::bigint[], $3::bigint[]) l
                WHERE l.kind = 'message' ORDER BY l.seq`,
              [known.topics, known.lo, known.hi],
            )
          ).rows.slice(-8);
        await client.query('SAVEPOINT before_lease');
        assert.ok(
          (await raw(told)).every((r) => !r.has_event),
          "inside the window told, each entry comes with its event's id alone",
        );
        await client.query('ROLLBACK TO SAVEPOINT before_lease');
        const narrower = { ...told, lo: [String(BigInt(told.hi[0]!) - 3n)] };
        assert.deepEqual(
          (await raw(narrower)).map((r) => r.has_event),
          [true, true, true, true, true, false, false, false],
          'below the window, with its event',
        );
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }

      const second = await lease(100, { cursors: ['second'], held });
      assert.equal(second.length, 8);
      second.forEach((m, i) => {
        assert.equal(m.delivery.deliveryId.split('@')[1], first[i]!.delivery.deliveryId.split('@')[1]);
        assert.deepEqual(m.delivery.message, first[i]!.delivery.message, 'the same message for both cursors');
        assert.match(m.delivery.message.body, /"name": "held 30\d"/);
      });
      await completeLogRanges(db.pool, [...ranges(first), ...ranges(second)]);

      // Leased for topics other than those told (a topic one cursor reads, in the delivery worker): nothing is held.
      await db.pool.query(`INSERT INTO items SELECT g, 'held ' || g FROM generate_series(308, 311) g`);
      await routeAll();
      const more = await lease(100, { cursors: ['reader', 'second'], held, of: new Set(['orders']) });
      assert.equal(more.length, 8);
      assert.deepEqual(held.windows().hi, told.hi, 'what is held did not grow');
      await completeLogRanges(db.pool, ranges(more));
    } finally {
      await configure();
      await applyRetention(db.pool, 0, 0);
    }
  });
  test("one lease call reads an entry's event once for all its cursors, and each cursor gets the same message", async () => {
    // Fan-out (migration 046): a later cursor's entries of an event come back with the event's id alone, and share
    // the message the process built from the first cursor's.
    await configure({}, {}, false, true);
    try {
      await db.pool.query(`INSERT INTO items SELECT g, 'shared ' || g FROM generate_series(200, 205) g`);
      await routeAll();
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query(
          `SELECT l.subscription, l.event_id::text, l.event_op IS NOT NULL AS has_event
             FROM rowcast.lease_log_ranges(ARRAY['reader', 'second'], ARRAY[100, 100], 60000, 'test', 0, NULL, '{}', false) l
            WHERE l.kind = 'message' ORDER BY l.subscription, l.seq`,
        );
        const of = (sub: string) => rows.filter((r) => r.subscription === sub);
        assert.equal(of('second').length, 6);
        assert.ok(
          of('reader').every((r) => r.has_event),
          'the first cursor in the call gets every event',
        );
        assert.deepEqual(
          of('second').map((r) => [r.event_id, r.has_event]),
          of('reader')
            .slice(-6)
            .map((r) => [r.event_id, false]),
          "the second gets each event's id alone",
        );
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }

      const got = await lease(100, { cursors: ['reader', 'second'] });
      const bySeq = (sub: string) =>
        new Map(
          got
            .filter((m) => m.delivery.subscription === sub)
            .map((m) => [m.delivery.deliveryId.split('@')[1], m.delivery.message]),
        );
      const first = bySeq('reader');
      const second = bySeq('second');
      assert.equal(second.size, 6);
      for (const [seq, message] of second) {
        assert.deepEqual(message, first.get(seq), `seq ${seq}: the same message for both cursors`);
        assert.match(message.body, /"name": "shared 20\d"/);
      }
      await completeLogRanges(
        db.pool,
        [...new Map(got.map((m) => [`${m.range.subscription}/${m.range.fromSeq}`, m.range])).values()].map((range) => ({
          range,
          failed: [],
          handedBack: [],
        })),
      );
    } finally {
      await configure();
      // Later tests count what the topic keeps: only their own.
      await applyRetention(db.pool, 0, 0);
    }
  });

  test('a batch of segments only is routed by the short statement, which leaves any other batch for the full one', async () => {
    // Parameters as routeEvents passes them with no direct claim: batch size, four of the claim, three of the horizon.
    const segmentsOnly = async () => {
      const { rows } = await db.pool.query(SEGMENTS_ONLY_SQL, [100, [], [], 0, null, '0', null, []]);
      return { refused: rows[0].refused as boolean, events: rows[0].events as number };
    };
    const state = async () =>
      (
        await db.pool.query(
          `SELECT (SELECT count(*)::int FROM rowcast.log_segments) AS segments,
                  (SELECT count(*)::int FROM rowcast.messages) AS messages,
                  (SELECT count(*)::int FROM rowcast.unrouted_events()) AS unrouted,
                  (SELECT pos::text || ':' || cur::text FROM rowcast.route_tick) AS tick`,
        )
      ).rows[0] as { segments: number; messages: number; unrouted: number; tick: string };
    await routeAll();
    const start = await state();

    await db.pool.query(`INSERT INTO items SELECT g, 'only ' || g FROM generate_series(400, 402) g`);
    assert.deepEqual(await segmentsOnly(), { refused: false, events: 3 });
    const routed = await state();
    assert.equal(routed.segments, start.segments + 1, 'one segment for the batch');
    assert.equal(routed.messages, start.messages, 'no message row');
    assert.equal(routed.unrouted, 0);

    // An event for a topic with a subscription on rows in the batch: refused whole, nothing written.
    await db.pool.query(`INSERT INTO items VALUES (403, 'mixed')`);
    await db.pool.query('INSERT INTO orders VALUES (400)');
    assert.deepEqual(await segmentsOnly(), { refused: true, events: 0 });
    assert.deepEqual(await state(), { ...routed, unrouted: 2 }, 'the tick, the segments and the messages untouched');

    // The full statement routes it: a segment for the cursor's topic, a message row for the rows subscription's.
    await routeAll();
    const after = await state();
    assert.equal(after.unrouted, 0);
    assert.equal(after.segments, routed.segments + 1);
    const { rows } = await db.pool.query(
      `SELECT topic, body::jsonb -> 'after' ->> 'id' AS id FROM rowcast.messages ORDER BY seq DESC LIMIT 1`,
    );
    assert.deepEqual(rows, [{ topic: 'orders', id: '400' }]);
    assert.equal(after.messages, routed.messages + 1);
    const entries = await lease();
    assert.deepEqual(items(entries).slice(-4), [400, 401, 402, 403], 'the cursor reads both batches, in order');
    await completeLogRanges(
      db.pool,
      [...new Map(entries.map((m) => [`${m.range.subscription}/${m.range.fromSeq}`, m.range])).values()].map(
        (range) => ({
          range,
          failed: [],
          handedBack: [],
        }),
      ),
    );
    await applyRetention(db.pool, 0, 0);
  });
});

describe('the chain on segments', () => {
  let rowcast: RowcastRuntime | undefined;
  let receiver: WebhookReceiver;
  let failing = true;

  before(async () => {
    receiver = await WebhookReceiver.start({
      reply: (req) =>
        failing && req.json?.body?.after?.id === 42 ? { status: 503, body: 'not yet' } : { status: 200 },
    });
    await configure(
      {},
      { endpoint: receiver.url, deliveryPolicy: { maxAttempts: 5, minDelay: '100ms', maxDelay: '100ms' } },
    );
  });

  after(async () => {
    await rowcast?.stop();
    await receiver?.close();
  });

  test('delivers every change once, and retries a failed one from its row under the same id', async () => {
    rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
    await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(40, 49) g`);
    const ids = await eventually(async () => {
      const seen = receiver.requests.map((r) => r.json?.body?.after?.id as number);
      return new Set(seen).size >= 10 && seen;
    }, 'every change attempted');
    assert.deepEqual(
      [...new Set(ids)].sort((a, b) => a - b),
      [40, 41, 42, 43, 44, 45, 46, 47, 48, 49],
    );
    // The range completes with a row for the failed one, and a message row for that row to refer to.
    await eventually(async () => (await counts()).messages === 1, 'a message row for the failed change');
    const { rows } = await db.pool.query(
      `SELECT (m.body::jsonb -> 'after' ->> 'id')::int AS item, m.from_segment, d.subscription
         FROM rowcast.messages m JOIN rowcast.deliveries d ON d.message_id = m.id WHERE m.topic = 'items'`,
    );
    assert.deepEqual(rows, [{ item: 42, from_segment: true, subscription: 'reader' }], 'only for the failed change');
    failing = false;
    const tries = await eventually(() => {
      const of42 = receiver.requests.filter((r) => r.json?.body?.after?.id === 42);
      return of42.at(-1)?.status === 200 && of42;
    }, 'the failed change retried until delivered');
    assert.ok(tries.length >= 2);
    assert.equal(new Set(tries.map((r) => r.headers['webhook-id'])).size, 1, 'under the same id');
    assert.equal(new Set(tries.map((r) => r.body)).size, 1, 'with the same bytes');
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT state FROM rowcast.deliveries WHERE subscription = 'reader'`);
      return rows.length === 1 && rows[0].state === 'done';
    }, 'its row done');
    const others = receiver.requests.filter((r) => r.json?.body?.after?.id !== 42);
    assert.equal(others.length, 9, 'every other change sent once');
  });

  test('the delivery detail and list, the live stream, events and topics read segments', async () => {
    const { rows: log } = await db.pool.query(
      `SELECT s.seq::text, rowcast.derived_uuid((SELECT id FROM rowcast.installation), 'message/' || s.event_id)::text AS id,
              (e.after ->> 'id')::int AS item
         FROM rowcast.log_segments g, unnest(g.seqs, g.event_ids) s(seq, event_id) JOIN rowcast.events e ON e.id = s.event_id
        WHERE g.topic = 'items' ORDER BY s.seq`,
    );
    assert.deepEqual(
      log.map((r) => r.item),
      [40, 41, 42, 43, 44, 45, 46, 47, 48, 49],
      'what retention kept: the segments of this test',
    );
    const delivered = log.find((r) => r.item === 41)!;
    const detail = await getDelivery(db.pool, `reader@${delivered.seq}`);
    assert.equal(detail.state, 'done');
    assert.equal(detail.message.id, delivered.id);
    assert.equal((JSON.parse(detail.message.body) as { after: { id: number } }).after.id, 41);
    const failed = log.find((r) => r.item === 42)!;
    const retried = await getDelivery(db.pool, `reader@${failed.seq}`);
    assert.ok(!retried.id.includes('@'), 'the failed one is its row');
    assert.deepEqual([retried.state, retried.message.id], ['done', failed.id]);

    const page = await searchDeliveries(db.pool, { subscription: 'reader', limit: 4 });
    assert.deepEqual(
      page.items.map((d) => d.messageId),
      log
        .slice(-4)
        .reverse()
        .map((r) => r.id),
      'the newest first, by seq',
    );
    const next = await searchDeliveries(db.pool, { subscription: 'reader', limit: 100, cursor: page.nextCursor! });
    assert.deepEqual(
      next.items.map((d) => d.messageId),
      log
        .slice(0, -4)
        .reverse()
        .map((r) => r.id),
      'the next page goes on below the first',
    );
    // Pages of one: each builds the entries of a window of the newest segments below its cursor, not all of them.
    const walked: string[] = [];
    for (let cursor: string | undefined, pages = 0; pages < 50; pages++) {
      const one = await searchDeliveries(db.pool, { subscription: 'reader', limit: 1, ...(cursor ? { cursor } : {}) });
      walked.push(...one.items.map((d) => d.messageId));
      if (!one.nextCursor) break;
      cursor = one.nextCursor;
    }
    assert.deepEqual(walked, log.map((r) => r.id).reverse(), 'pages of one walk the whole log once, newest first');

    const stream = await openSse(`${rowcast!.httpUrl}/topics/items/stream`, { 'last-event-id': '0' });
    try {
      await eventually(() => stream.events.length >= log.length, 'the stream replays the segments');
      assert.deepEqual(
        stream.events.map((e) => e.id),
        log.map((r) => r.seq),
      );
      await db.pool.query(`INSERT INTO items VALUES (50, 'live')`);
      await eventually(() => stream.events.length === log.length + 1, 'a new change streamed live');
      assert.equal(JSON.parse(stream.events.at(-1)!.data).body.after.id, 50);
    } finally {
      await stream.close();
    }

    const events = await listEvents(db.pool, { topic: 'items', limit: 1 });
    assert.ok(events.items[0]!.routedAt, 'an event routed into a segment has its routing time');
    const topics = await listTopics(db.pool);
    assert.ok(topics.find((t) => t.name === 'items')!.messagesPerMinute >= 11, 'segments count as messages per minute');
  });

  test('a resend and a replay of segment entries send the same messages again, through rows made for them', async () => {
    const sent = (item: number) => receiver.requests.filter((r) => r.json?.body?.after?.id === item);
    const { rows } = await db.pool.query(
      `SELECT s.seq::text FROM rowcast.log_segments g, unnest(g.seqs, g.event_ids) s(seq, event_id)
         JOIN rowcast.events e ON e.id = s.event_id WHERE (e.after ->> 'id')::int = 43`,
    );
    await resendDelivery(db.pool, `reader@${rows[0].seq}`);
    await eventually(() => sent(43).length === 2, 'the resend sent');
    assert.equal(sent(43)[0]!.headers['webhook-id'], sent(43)[1]!.headers['webhook-id'], 'the same message');

    await eventually(async () => {
      const { rows: done } = await db.pool.query(
        `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'reader' AND state = 'done'`,
      );
      return done[0].n === 2;
    }, 'the resent row done');

    const before = receiver.requests.length;
    const queued = await replayCapture(db.pool, 'items', { subscription: 'reader', since: new Date(0) });
    assert.equal(queued, 11, 'every change the topic kept (40 to 50)');
    await eventually(() => receiver.requests.length === before + 11, 'the replay sent');
    assert.equal(sent(44).length, 2);
    assert.equal(sent(44)[0]!.headers['webhook-id'], sent(44)[1]!.headers['webhook-id'], 'as the same message');
  });
});

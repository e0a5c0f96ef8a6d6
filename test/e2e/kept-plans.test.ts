import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { routeEvents } from '../../src/routing/route-events.js';
import { applyConfig, createTestDatabase, insertRoutedEvents, type TestDatabase } from '../support/database.js';

// The statements that run on every routing pass and every lease must keep the plans the session made for them:
// PostgreSQL otherwise plans a statement anew at each call when its generic plan looks dearer than a custom one,
// which grows likelier as the table it reads grows (the lease: migration 053; the routing tick: 054). And those kept
// plans must still read by index. The plans are read as PostgreSQL runs them: auto_explain, logged to the client.

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
  await applyConfig(db.pool, {
    topics: { logged: {}, items: {} },
    captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
    subscriptions: { reader: { topic: 'logged', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: true } },
  });
  // Tables of the size where a generic plan's estimate of a range is dearer than a custom plan's, with statistics:
  // a log, and events routed long ago (their writers' xids below every snapshot's xmin).
  await db.pool.query(
    `INSERT INTO rowcast.messages (id, topic, body) SELECT gen_random_uuid(), 'logged', 'm' || g FROM generate_series(1, 30000) g`,
  );
  await insertRoutedEvents(db.pool, 30000, 'items');
  await db.pool.query('ANALYZE rowcast.messages, rowcast.events');
  await db.pool.query(`UPDATE rowcast.cursors SET leased_to = (SELECT max(seq) FROM rowcast.messages)`);
});

after(() => db?.drop());

/** A client whose statements, nested ones too, log their plans to it; `plans()` and `clear()` what was logged. */
async function explaining(): Promise<{
  client: pg.PoolClient;
  plans: () => string[];
  clear: () => void;
  done: () => Promise<void>;
}> {
  const client = await db.pool.connect();
  const logged: string[] = [];
  const onNotice = (n: { message?: string }) => logged.push(n.message ?? '');
  client.on('notice', onNotice);
  await client.query(`LOAD 'auto_explain'`);
  await client.query(`SET auto_explain.log_min_duration = 0`);
  await client.query(`SET auto_explain.log_nested_statements = on`);
  await client.query(`SET client_min_messages = log`);
  return {
    client,
    plans: () => logged.filter((l) => l.includes('plan:')),
    clear: () => (logged.length = 0),
    done: async () => {
      client.off('notice', onNotice);
      await client.query(`SET client_min_messages = notice; SET auto_explain.log_min_duration = -1`);
      client.release();
    },
  };
}

// More calls than PostgreSQL makes custom plans for before it compares them with the generic one (five).
const CALLS = 8;

test('the lease keeps its generic plans on a big log, and they read the log by index', async () => {
  const x = await explaining();
  try {
    for (let call = 1; call <= CALLS; call++) {
      x.clear();
      const appended = await x.client.query(
        `INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'logged', $1) RETURNING seq`,
        [`new ${call}`],
      );
      // As an appending statement calls it: settled up to the seq before its own.
      const { rows } = await x.client.query(
        `SELECT kind, body FROM rowcast.lease_log_ranges('{reader}', '{100}', 60000, 'me', $1::bigint - 1, NULL, '{}', true,
                                                         own_seqs => 1)`,
        [appended.rows[0].seq],
      );
      assert.deepEqual(
        rows.map((r) => [r.kind, r.body]),
        [
          ['horizon', null],
          ['message', `new ${call}`],
        ],
      );
    }
  } finally {
    await x.done();
  }
  const plans = x.plans();
  const rangeRead = plans.find((p) => p.includes('rowcast.range_message_rows('));
  assert.ok(rangeRead, `the range's read is among the lease's statements:\n${plans.join('\n')}`);
  // A custom plan has the call's values in it ('logged'::text); the kept generic one has parameters.
  assert.match(rangeRead, /Index Cond: \(\(topic = \$\d+\) AND \(seq > \$\d+\)/, rangeRead);
  // A range of message rows only is read without the segment entries' part (migration 056), in index order.
  assert.doesNotMatch(rangeRead, /log_segments|events|Append|Sort/, rangeRead);
  for (const plan of plans)
    assert.doesNotMatch(plan, /Seq Scan on (messages|log_segments|events|cursor_leases)\b/, plan);
});

test('the routing tick keeps its generic plans on a big events table, and they read events by index', async () => {
  const x = await explaining();
  // routeEvents on this one connection, with routing's settings (createPool's `queues`).
  await x.client.query('SET enable_seqscan = off; SET enable_bitmapscan = off');
  const routing = { query: x.client.query.bind(x.client) } as unknown as pg.Pool;
  try {
    for (let call = 1; call <= CALLS; call++) {
      x.clear();
      await db.pool.query('INSERT INTO items VALUES ($1)', [call]);
      assert.equal((await routeEvents(routing, 100)).events, 1, `pass ${call} routes its one event`);
    }
  } finally {
    await x.done();
  }
  const plans = x.plans();
  const committedSince = plans.find((p) => p.includes('Running at the tick, committed since'));
  const tickEvents = plans.find((p) => p.includes('FROM rowcast.events e') && p.includes('e.id > pos'));
  assert.ok(committedSince && tickEvents, `the tick's statements are among routing's:\n${plans.join('\n')}`);
  // A custom plan has the call's values in it; the kept generic ones have parameters.
  assert.match(committedSince, /Index Cond: \(written_by >= pg_snapshot_xmax\(\$\d+\)\)/, committedSince);
  assert.match(tickEvents, /Index Cond: \(\(id > \$\d+\) AND \(id <= \$\d+\)\)/, tickEvents);
  for (const plan of [committedSince, tickEvents]) assert.doesNotMatch(plan, /Seq Scan on events\b/, plan);
});

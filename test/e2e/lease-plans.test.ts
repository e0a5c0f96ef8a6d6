import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { applyConfig, createTestDatabase, type TestDatabase } from '../support/database.js';

// The lease (rowcast.lease_log_ranges) runs on every routing and every function result that appends to a cursor's
// topic, and on every cursor claim. Its statements must keep the plans the session made for them: PostgreSQL
// otherwise plans a statement anew at each call when the generic plan looks dearer than a custom one, which for the
// range read grows likelier as the log grows (migration 053). And those kept plans must still read the log by index.
// The plans are read as PostgreSQL runs them: auto_explain, logged to this client.

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  await applyConfig(db.pool, {
    topics: { logged: {} },
    subscriptions: { reader: { topic: 'logged', protocol: 'http', endpoint: 'http://127.0.0.1:9/', cursor: true } },
  });
  // A log of the size where the generic plan's estimate of a range is dearer than a custom plan's, with statistics.
  await db.pool.query(
    `INSERT INTO rowcast.messages (id, topic, body) SELECT gen_random_uuid(), 'logged', 'm' || g FROM generate_series(1, 30000) g`,
  );
  await db.pool.query('ANALYZE rowcast.messages');
  await db.pool.query(`UPDATE rowcast.cursors SET leased_to = (SELECT max(seq) FROM rowcast.messages)`);
});

after(() => db?.drop());

test('the lease keeps its generic plans on a big log, and they read the log by index', async () => {
  const client = await db.pool.connect();
  const logged: string[] = [];
  const onNotice = (n: { message?: string }) => logged.push(n.message ?? '');
  client.on('notice', onNotice);
  try {
    await client.query(`LOAD 'auto_explain'`);
    await client.query(`SET auto_explain.log_min_duration = 0`);
    await client.query(`SET auto_explain.log_nested_statements = on`);
    await client.query(`SET client_min_messages = log`);
    // More calls than PostgreSQL makes custom plans for before it compares them with the generic one (five).
    for (let call = 1; call <= 8; call++) {
      logged.length = 0;
      const appended = await client.query(
        `INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'logged', $1) RETURNING seq`,
        [`new ${call}`],
      );
      // As an appending statement calls it: settled up to the seq before its own.
      const { rows } = await client.query(
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
    client.off('notice', onNotice);
    await client.query(`SET client_min_messages = notice`);
    client.release();
  }
  const plans = logged.filter((l) => l.includes('plan:'));
  const rangeRead = plans.find((p) => p.includes('FROM rowcast.messages m') && p.includes('UNION ALL'));
  assert.ok(rangeRead, `the range's read is among the lease's statements:\n${plans.join('\n')}`);
  // A custom plan has the call's values in it ('logged'::text); the kept generic one has parameters.
  assert.match(rangeRead, /Index Cond: \(\(topic = \$\d+\) AND \(seq > \$\d+\)/, rangeRead);
  for (const plan of plans)
    assert.doesNotMatch(plan, /Seq Scan on (messages|log_segments|events|cursor_leases)\b/, plan);
});

/**
 * The lease of one appended message row, as a statement that publishes leases what it appended (a function's
 * results, an SNS Publish): a loop in PostgreSQL inserts a message, leases it for the topic's cursor (own_seqs 1,
 * so the lock table is not read), deletes the range and commits, `n` times; the same loop without the lease is
 * subtracted. Prints µs per lease, medians of `ROUNDS` (5) alternations of the two loops. No client round trips:
 * what it measures is the lease function itself (its statements' start-up and execution). PGSS=1, on a server with
 * pg_stat_statements loaded (`pg_stat_statements.track = all` shows the lease's own statements): the measured
 * loops' statements after the warm-up, µs per lease. RAW=1: each round's two loops, µs per iteration.
 *   DATABASE_URL=… [ROUNDS=5] [PGSS=1] [RAW=1] npx tsx bench/probes/lease-loop.ts [n]   (default 3000)
 */
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const n = Number(process.argv[2] ?? 3_000);
const rounds = Number(process.env.ROUNDS ?? 5);

const loop = (lease: boolean) => `
DO $$
DECLARE
  q bigint;
BEGIN
  FOR i IN 1..${n} LOOP
    INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'p', 'm') RETURNING seq INTO q;
    ${
      lease
        ? `PERFORM * FROM rowcast.lease_log_ranges(ARRAY['ps'], ARRAY[100], 30000, 'loop', q - 1, NULL, '{}', true,
                                                  own_seqs => 1);
    DELETE FROM rowcast.cursor_leases WHERE subscription = 'ps';`
        : `UPDATE rowcast.cursors SET leased_to = q WHERE subscription = 'ps';`
    }
    COMMIT;
  END LOOP;
END
$$`;

const db = await probeDatabase('lease_loop');
try {
  await applyProbeConfig(db.pool, {
    topics: { p: {} },
    subscriptions: { ps: { topic: 'p', protocol: 'http', endpoint: 'http://127.0.0.1:9/none', cursor: true } },
  });
  const client = await db.pool.connect();
  const run = async (lease: boolean) => {
    const started = performance.now();
    await client.query(loop(lease));
    const us = ((performance.now() - started) * 1000) / n;
    // Each loop starts on the same tables: no dead rows or grown log from the loop before.
    await client.query(`DELETE FROM rowcast.messages WHERE topic = 'p'`);
    await client.query('VACUUM rowcast.messages, rowcast.cursors, rowcast.cursor_leases');
    return us;
  };
  try {
    await client.query('SET synchronous_commit = off');
    // The loop's lease hands out its message (a subscription that did not, e.g. one awaiting confirmation, would
    // measure something else).
    const { rows } = await client.query(`
      WITH m AS (INSERT INTO rowcast.messages (id, topic, body) VALUES (gen_random_uuid(), 'p', 'm') RETURNING seq)
      SELECT l.kind, l.message_id FROM m, rowcast.lease_log_ranges(ARRAY['ps'], ARRAY[100], 30000, 'loop', m.seq - 1,
                                                                  NULL, '{}', true, own_seqs => 1) l`);
    if (rows.filter((r) => r.kind === 'message').length !== 1)
      throw new Error(`the lease did not hand out its message: ${JSON.stringify(rows)}`);
    await client.query(`DELETE FROM rowcast.cursor_leases WHERE subscription = 'ps'`);
    await run(true); // warm-up: plans, caches
    if (process.env.PGSS)
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()');
    await run(false);
    const perLease: number[] = [];
    const raw: [number, number][] = [];
    for (let r = 0; r < rounds; r++) {
      const withLease = await run(true);
      const without = await run(false);
      raw.push([+withLease.toFixed(1), +without.toFixed(1)]);
      perLease.push(withLease - without);
    }
    if (process.env.RAW) console.log(JSON.stringify(raw));
    perLease.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        n,
        leaseUs: perLease.map((v) => +v.toFixed(1)),
        medianUs: +perLease[Math.floor(perLease.length / 2)]!.toFixed(1),
      }),
    );
    if (process.env.PGSS) {
      const { rows: top } = await client.query(
        `SELECT round((total_exec_time * 1000 / ($1::int * $2::int))::numeric, 1) AS us_per_lease, calls,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS statement
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY total_exec_time DESC LIMIT 25`,
        [n, rounds],
      );
      for (const r of top) console.log(String(r.us_per_lease).padStart(8), String(r.calls).padStart(7), r.statement);
    }
  } finally {
    client.release();
  }
} finally {
  await db.drop();
}

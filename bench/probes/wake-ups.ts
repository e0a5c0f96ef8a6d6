/**
 * What the sleeping flags cost on this machine (docs/architecture.md, Wake-ups): a trickle of single-row commits (40
 * ms apart) and a burst of 4 writers; prints how often the router's flag flipped and what share of commits sent a
 * NOTIFY. Then invocations queued by SQL (rowcast.invoke) from 2 writers while 2 others keep capture busy: the
 * function worker's flag (migration 039), its NOTIFYs, and how long the invocations waited (the poll is 1 s, so a
 * wait near it means no wake-up). These depend on the machine's speed, hence a probe and not a test
 * (test/unit/wake-policy.test.ts drives the decisions directly).
 *   DATABASE_URL=… npx tsx bench/probes/wake-ups.ts [trickle events] [burst commits per writer]
 */
import pg from 'pg';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyProbeConfig, invocationsDone, probeDatabase, startCountingReceiver, until } from './probe-db.js';

const trickle = Number(process.argv[2] ?? 20);
const perWriter = Number(process.argv[3] ?? 250);
const db = await probeDatabase('wakeups');
const receiver = await startCountingReceiver();
await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
const config = await applyProbeConfig(db.pool, {
  topics: { items: {}, relayed: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  // Rows, as in the figures this probe has recorded so far.
  subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: receiver.url, cursor: false } },
  // Publishes to a topic nobody subscribes to.
  functions: {
    relay: {
      handler: new URL('../handlers/publish-once.ts', import.meta.url).pathname,
      environment: { ENV_TOPIC: 'relayed' },
    },
  },
});
// Counts the flag's flips (an unlogged counter, like the flag's table).
await db.pool.query(`
  CREATE UNLOGGED TABLE flips (n int NOT NULL); INSERT INTO flips VALUES (0);
  CREATE FUNCTION count_flip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE flips SET n = n + 1; RETURN NULL; END $$;
  CREATE TRIGGER count_flip AFTER UPDATE OF sleeping ON rowcast.dispatchers FOR EACH ROW
    WHEN (OLD.sleeping IS DISTINCT FROM NEW.sleeping) EXECUTE FUNCTION count_flip();
  CREATE UNLOGGED TABLE function_flips (n int NOT NULL); INSERT INTO function_flips VALUES (0);
  CREATE FUNCTION count_function_flip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE function_flips SET n = n + 1; RETURN NULL; END $$;
  -- (A version before migration 039 has no such flag: the probe then measures the waits without it.)
  DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'rowcast' AND table_name = 'dispatchers' AND column_name = 'functions_sleeping') THEN
      CREATE TRIGGER count_function_flip AFTER UPDATE OF functions_sleeping ON rowcast.dispatchers FOR EACH ROW
        WHEN (OLD.functions_sleeping IS DISTINCT FROM NEW.functions_sleeping) EXECUTE FUNCTION count_function_flip();
    END IF;
  END $$;`);
let notifies = 0;
let invocationNotifies = 0;
const listener = new pg.Client({ connectionString: db.url });
await listener.connect();
listener.on('notification', (n) => {
  if (n.channel !== 'rowcast') return;
  notifies++;
  if (n.payload === 'invocations') invocationNotifies++;
});
await listener.query('LISTEN rowcast');
const rowcast = await startRowcast({
  databaseUrl: db.url,
  runtime: { pollInterval: 200, allowPrivateEndpoints: true },
  functions: config.functions,
  logger: createLogger('silent'),
});

const flips = async () => (await db.pool.query<{ n: number }>('SELECT n FROM flips')).rows[0]!.n;
const sleeping = async () => (await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE sleeping')).rowCount! > 0;

await until(sleeping, 'the router to sleep');
let f0 = await flips();
notifies = 0;
for (let id = 1; id <= trickle; id++) {
  await db.pool.query('INSERT INTO items VALUES ($1)', [id]);
  await new Promise((r) => setTimeout(r, 40));
}
await until(async () => (await receiver.arrivals()).count >= trickle, 'the trickle delivered');
console.log(
  `trickle: ${trickle} events 40 ms apart: ${(await flips()) - f0} flips (40 with a clear and a set per event), ${notifies} NOTIFYs`,
);

await until(sleeping, 'the router to sleep');
f0 = await flips();
notifies = 0;
await Promise.all(
  Array.from({ length: 4 }, async (_, w) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    for (let i = 0; i < perWriter; i++)
      await client.query('INSERT INTO items VALUES ($1)', [100_000 + w * perWriter + i]);
    await client.end();
  }),
);
await until(async () => (await receiver.arrivals()).count >= trickle + 4 * perWriter, 'the burst delivered');
console.log(
  `burst: 4 writers × ${perWriter} commits: ${(await flips()) - f0} flips, ${notifies} NOTIFYs (${Math.round((100 * notifies) / (4 * perWriter))} % of commits)`,
);

// Invocations queued by SQL while capture keeps the router awake, with the poll at a second (the default): each
// invocation's wait from its commit to its finish.
await rowcast.stop();
const hasFunctionFlag =
  (
    await db.pool.query(
      `SELECT 1 FROM information_schema.columns WHERE table_name = 'dispatchers' AND column_name = 'functions_sleeping'`,
    )
  ).rowCount! > 0;
const functionsAsleep = async () =>
  (await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE functions_sleeping')).rowCount! > 0;
const slowPoll = await startRowcast({
  databaseUrl: db.url,
  runtime: { pollInterval: 1000, allowPrivateEndpoints: true },
  functions: config.functions,
  logger: createLogger('silent'),
});
// Warm: the function's handler threads started (several invocations at once make the pool start more than one),
// so that the waits below are wake-ups, not threads loading.
await db.pool.query(`SELECT rowcast.invoke('relay', '{}', 'warm-up') FROM generate_series(1, 20)`);
await until(() => invocationsDone(db.pool), 'the warm-up invocations done');
await until(sleeping, 'the router to sleep');
await until(async () => !hasFunctionFlag || (await functionsAsleep()), 'the function worker to sleep');
const ff0 = (await db.pool.query<{ n: number }>('SELECT n FROM function_flips')).rows[0]!.n;
const invokes = perWriter;
invocationNotifies = 0;
let invoking = 2;
let captured = 0;
// The invokes paced (10 ms apart on each connection, well within what the function runs), so that the waits are
// wake-ups, not a backlog; captured commits as fast as they go until the invokes end, so the router does not sleep.
await Promise.all(
  Array.from({ length: 4 }, async (_, w) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    if (w < 2) while (invoking) await client.query('INSERT INTO items VALUES ($1)', [1_000_000 + captured++]);
    else {
      for (let i = 0; i < invokes; i++) {
        await client.query(`SELECT rowcast.invoke('relay', $1)`, [JSON.stringify({ i })]);
        await new Promise((r) => setTimeout(r, 10));
      }
      invoking--;
    }
    await client.end();
  }),
);
await until(() => invocationsDone(db.pool), 'the invocations done');
// The slowest waits are the first invocations after idle: the function's slots (and its handler thread) went back
// after a second without work, and the first of the burst starts it again: counted apart.
const waits = (
  await db.pool.query<{ p50: number; p90: number; slow: number; slowFirst: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p90,
            count(*) FILTER (WHERE ms > 1000)::int AS slow, count(*) FILTER (WHERE ms > 1000 AND n <= 10)::int AS "slowFirst"
       FROM (SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms, row_number() OVER (ORDER BY created_at) AS n
               FROM rowcast.invocations WHERE source = 'sql') t`,
  )
).rows[0]!;
const functionFlips = (await db.pool.query<{ n: number }>('SELECT n FROM function_flips')).rows[0]!.n - ff0;
console.log(
  `invocations by SQL beside a capture burst: 2 × ${invokes} invokes 10 ms apart beside ${captured} captured commits: ${functionFlips} flips of the function worker's flag, ${invocationNotifies} NOTIFYs (${Math.round((100 * invocationNotifies) / (2 * invokes))} % of invokes); queued → finished p50 ${Number(waits.p50).toFixed(1)}, p90 ${Number(waits.p90).toFixed(1)} ms; ${waits.slow} over the poll interval (1 s), ${waits.slowFirst} of them among the first 10 queued`,
);

await slowPoll.stop();
await listener.end();
await receiver.close();
await db.drop();

/**
 * What the router's sleeping flag costs on this machine (docs/architecture.md, Wake-ups): a trickle of single-row
 * commits (40 ms apart) and a burst of 4 writers; prints how often the flag flipped and what share of commits sent
 * a NOTIFY. These depend on the machine's speed, hence a probe and not a test (test/unit/wake-policy.test.ts drives
 * the decisions directly).
 *   DATABASE_URL=… npx tsx bench/probes/wake-ups.ts [trickle events] [burst commits per writer]
 */
import pg from 'pg';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyProbeConfig, probeDatabase, startCountingReceiver } from './probe-db.js';

const trickle = Number(process.argv[2] ?? 20);
const perWriter = Number(process.argv[3] ?? 250);
const db = await probeDatabase('wakeups');
const receiver = await startCountingReceiver();
await db.pool.query('CREATE TABLE items (id int PRIMARY KEY)');
await applyProbeConfig(db.pool, {
  topics: { items: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT'] } },
  // Rows, as in the figures this probe has recorded so far.
  subscriptions: { hook: { topic: 'items', protocol: 'http', endpoint: receiver.url, cursor: false } },
});
// Counts the flag's flips (an unlogged counter, like the flag's table).
await db.pool.query(`
  CREATE UNLOGGED TABLE flips (n int NOT NULL); INSERT INTO flips VALUES (0);
  CREATE FUNCTION count_flip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE flips SET n = n + 1; RETURN NULL; END $$;
  CREATE TRIGGER count_flip AFTER UPDATE OF sleeping ON rowcast.dispatchers FOR EACH ROW
    WHEN (OLD.sleeping IS DISTINCT FROM NEW.sleeping) EXECUTE FUNCTION count_flip();`);
let notifies = 0;
const listener = new pg.Client({ connectionString: db.url });
await listener.connect();
listener.on('notification', (n) => n.channel === 'rowcast' && notifies++);
await listener.query('LISTEN rowcast');
const rowcast = await startRowcast({
  databaseUrl: db.url,
  runtime: { pollInterval: 200, allowPrivateEndpoints: true },
  logger: createLogger('silent'),
});

const flips = async () => (await db.pool.query<{ n: number }>('SELECT n FROM flips')).rows[0]!.n;
const sleeping = async () => (await db.pool.query('SELECT 1 FROM rowcast.dispatchers WHERE sleeping')).rowCount! > 0;
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; !(await check()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

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

await rowcast.stop();
await listener.end();
await receiver.close();
await db.drop();

/**
 * Capture overhead probe: commits/s of single-row INSERTs from 8 writers, and of 100-row INSERTs (MULTI_WRITERS, default 8), on a
 * bare table and on captured ones (row-level and statement-level), optionally with rowcast routing meanwhile.
 *   DATABASE_URL=… npx tsx bench/probes/capture.ts [seconds] [--with-rowcast]
 */
import pg from 'pg';
import { startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyProbeConfig, probeDatabase } from './probe-db.js';

const seconds = Number(process.argv[2] ?? 5);
const withRowcast = process.argv.includes('--with-rowcast');
const db = await probeDatabase('capture');
const ddl = '(id bigint PRIMARY KEY, name text, qty int, price numeric(12,2), created_at timestamptz DEFAULT now())';
await db.pool.query(`CREATE TABLE bare ${ddl}; CREATE TABLE rowcap ${ddl}; CREATE TABLE stmtcap ${ddl}`);
await applyProbeConfig(db.pool, {
  topics: { t: {} },
  captures: {
    rowcap: { table: 'rowcap', topic: 't', operations: ['INSERT'] },
    stmtcap: { table: 'stmtcap', topic: 't', operations: ['INSERT'], mode: 'statement' },
  },
});
const rowcast = withRowcast
  ? await startRowcast({ databaseUrl: db.url, runtime: { logLevel: 'silent' }, logger: createLogger('silent') })
  : null;

// Counts NOTIFYs on the wake-up channel: the share of commits that paid for one is independent of machine load.
const listener = new pg.Client({ connectionString: db.url });
await listener.connect();
let notifies = 0;
listener.on('notification', () => notifies++);
await listener.query('LISTEN rowcast');
const notifyShare = new Map<string, number[]>();

let nextId = 1;
async function run(table: string, writers: number, rowsPerStatement: number): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: writers }, async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      return c;
    }),
  );
  const values = Array.from({ length: rowsPerStatement }, (_, i) => `($${i + 1}, 'name', 3, 9.99)`).join(', ');
  const sql = `INSERT INTO ${table} (id, name, qty, price) VALUES ${values}`;
  const end = Date.now() + seconds * 1000;
  let statements = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) {
        await c.query(
          sql,
          Array.from({ length: rowsPerStatement }, () => nextId++),
        );
        statements++;
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
  return statements / seconds;
}

const result: Record<string, number> = {};
const multi = Number(process.env.MULTI_WRITERS ?? 8);
const configs = [
  ['single-row x8 bare', 'bare', 8, 1],
  ['single-row x8 row-capture', 'rowcap', 8, 1],
  ['100-row xN bare', 'bare', multi, 100],
  ['100-row xN row-capture', 'rowcap', multi, 100],
  ['100-row xN statement-capture', 'stmtcap', multi, 100],
] as const;
// Interleaved repetitions, median of each: the machine's load drifts.
const reps = Number(process.env.REPS ?? 3);
const samples = new Map<string, number[]>();
for (let rep = 0; rep < reps; rep++) {
  for (const [label, table, writers, rows] of configs) {
    const before = notifies;
    const rate = await run(table, writers, rows);
    samples.set(label, [...(samples.get(label) ?? []), rate]);
    notifyShare.set(label, [...(notifyShare.get(label) ?? []), +((notifies - before) / (rate * seconds)).toFixed(3)]);
  }
}
for (const [label, xs] of samples) {
  xs.sort((a, b) => a - b);
  result[label] = Math.round(xs[Math.floor(xs.length / 2)]!);
  console.log(`${label}: ${result[label]} statements/s (min ${Math.round(xs[0]!)}, max ${Math.round(xs.at(-1)!)})`);
}
console.log(`NOTIFYs per statement: ${JSON.stringify(Object.fromEntries(notifyShare))}`);
await listener.end();
console.log(
  JSON.stringify({
    withRowcast,
    single8Ratio: +(result['single-row x8 row-capture']! / result['single-row x8 bare']!).toFixed(2),
    statementVsRow: +(result['100-row xN statement-capture']! / result['100-row xN row-capture']!).toFixed(2),
    statementVsBare: +(result['100-row xN statement-capture']! / result['100-row xN bare']!).toFixed(2),
  }),
);
await rowcast?.stop();
await db.drop();

/**
 * Bodies probe: step 1 of issue 20's "Next" (docs/architecture.md) asks whether a cursor can read its topic's
 * events directly, building each message's body at read time, instead of routing copying every event into a
 * message row. This measures, per event and side by side in one run (one connection, nothing else running):
 *   copy        routing's copy today: the body built by json_build_object and inserted as a message row (with the
 *               table's indexes), once per event whatever the fan-out;
 *   copy, no body  the same row without its body (a halfway design: rows kept, bodies built at read time);
 *   read rows   what a cursor reads per event today: the message's columns, its body already built;
 *   read+sql    a cursor reading the event with the body built by the same json_build_object, in its read;
 *   read+node   a cursor reading the event's columns as text, the body spliced together in Node (no JSON parsing).
 * Fan-out to N costs per event: today copy + N × read rows; read at delivery N × read+sql or N × read+node (or one
 * read+node per range shared by the N cursors of a process). Each figure is wall µs as Node sees the statement,
 * with the backend's and this process's CPU, and the WAL written.
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/probes/bodies.ts [events] [small|wide] [reps]
 */
import pg from 'pg';
import { applyProbeConfig, cpuSecondsOf, probeDatabase } from './probe-db.js';

const events = Number(process.argv[2] ?? 20_000);
const shape = process.argv[3] === 'wide' ? 'wide' : 'small';
const reps = Number(process.argv[4] ?? 3);
const BATCH = 500;

const db = await probeDatabase('bodies');
// small: the drain probe's row (3 columns); wide: 12 columns, about 1 KB of JSON per image.
await db.pool.query(
  shape === 'small'
    ? 'CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)'
    : `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, note text, ${Array.from({ length: 9 }, (_, i) => `c${i} numeric`).join(', ')})`,
);
await applyProbeConfig(db.pool, {
  topics: { items: {} },
  captures: { items: { table: 'items', topic: 'items', operations: ['INSERT', 'UPDATE'] } },
});
// UPDATEs: the event has before, after and changed, as most captured changes do.
await db.pool.query(
  shape === 'small'
    ? `INSERT INTO items SELECT g, 'item ' || g, g % 100 FROM generate_series(1, $1) g`
    : `INSERT INTO items SELECT g, 'item ' || g, g % 100, repeat('x', 700), ${Array.from({ length: 9 }, (_, i) => `g * ${i + 1}.25`).join(', ')} FROM generate_series(1, $1) g`,
  [events],
);
await db.pool.query('DELETE FROM rowcast.events');
await db.pool.query(`UPDATE items SET qty = qty + 1, name = name || '!'`);
const { rows: idRows } = await db.pool.query<{ id: string }>('SELECT id::text FROM rowcast.events ORDER BY id');
const ids = idRows.map((r) => r.id);
const batches: string[][] = [];
for (let i = 0; i < ids.length; i += BATCH) batches.push(ids.slice(i, i + BATCH));

// A table like rowcast.messages, its indexes included, for the copy to go to (and be read back like the log).
await db.pool.query('CREATE TABLE probe_messages (LIKE rowcast.messages INCLUDING ALL)');
// A halfway design: the message row kept (what refers to it still can), its body left to be built at read time.
await db.pool.query('CREATE TABLE probe_bodiless (LIKE rowcast.messages INCLUDING ALL)');
await db.pool.query('ALTER TABLE probe_bodiless ALTER COLUMN body DROP NOT NULL');

const client = new pg.Client({ connectionString: db.url });
await client.connect();
const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
await client.query(`SET synchronous_commit = off`);

// Routing's body expression (src/routing/route-events.ts), over `ev`.
const BODY_SQL = `json_build_object(
  'id', ev.id::text, 'op', ev.op,
  'source', coalesce(ev.source::json, json_build_object('capture', ev.capture, 'schema', ev.schema_name, 'table', ev.table_name, 'txid', ev.txid::text)),
  'key', ev.key, 'before', ev.before, 'after', ev.after, 'changed', ev.changed,
  'captured_at', to_char(ev.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  'trace', ev.trace)::text`;

const COPY_SQL = `INSERT INTO probe_messages (id, topic, subject, body, attributes, group_key, event_id, trace)
SELECT gen_random_uuid(), ev.topic, NULL, ${BODY_SQL},
       jsonb_build_object('op', ev.op, 'schema', ev.schema_name, 'table', ev.table_name, 'capture', ev.capture),
       ev.key::text, ev.id, ev.trace
  FROM rowcast.events ev WHERE ev.id = ANY ($1::bigint[]) ORDER BY ev.id`;
const COPY_BODILESS_SQL = `INSERT INTO probe_bodiless (id, topic, subject, attributes, group_key, event_id, trace)
SELECT gen_random_uuid(), ev.topic, NULL,
       jsonb_build_object('op', ev.op, 'schema', ev.schema_name, 'table', ev.table_name, 'capture', ev.capture),
       ev.key::text, ev.id, ev.trace
  FROM rowcast.events ev WHERE ev.id = ANY ($1::bigint[]) ORDER BY ev.id`;
// The columns the lease returns of a message (LEASE_COLUMNS' message part), a range of seqs as a cursor reads it.
const READ_ROWS_SQL = `SELECT m.seq, m.id::text, m.topic, m.subject, m.body, m.content_type, m.attributes, m.created_at, m.trace, m.group_key
  FROM probe_messages m WHERE m.seq > $1 AND m.seq <= $2 ORDER BY m.seq`;
const READ_SQL_SQL = `SELECT ev.id::text, ev.topic, ${BODY_SQL} AS body,
       jsonb_build_object('op', ev.op, 'schema', ev.schema_name, 'table', ev.table_name, 'capture', ev.capture) AS attributes,
       ev.captured_at, ev.trace, ev.key::text AS group_key
  FROM rowcast.events ev WHERE ev.id = ANY ($1::bigint[]) ORDER BY ev.id`;
// Every column as the text it would be spliced in as: nothing parsed into objects (pg leaves text as strings).
const READ_NODE_SQL = `SELECT ev.id::text, ev.topic, ev.op, ev.capture, ev.schema_name, ev.table_name, ev.txid::text,
       ev.source::text, ev.key::text, ev.before::text, ev.after::text, array_to_json(ev.changed)::text AS changed,
       to_char(ev.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS captured_at, ev.trace
  FROM rowcast.events ev WHERE ev.id = ANY ($1::bigint[]) ORDER BY ev.id`;

type NodeRow = Record<
  | 'id'
  | 'topic'
  | 'op'
  | 'capture'
  | 'schema_name'
  | 'table_name'
  | 'txid'
  | 'key'
  | 'before'
  | 'after'
  | 'changed'
  | 'captured_at',
  string
> & { source: string | null; trace: string | null };

const str = JSON.stringify;
/** The body routing builds, spliced from the columns' text: the same JSON (the spacing aside). */
function bodyOf(r: NodeRow): string {
  const source =
    r.source ??
    `{"capture":${str(r.capture)},"schema":${str(r.schema_name)},"table":${str(r.table_name)},"txid":${str(r.txid)}}`;
  return `{"id":${str(r.id)},"op":${str(r.op)},"source":${source},"key":${r.key ?? 'null'},"before":${r.before ?? 'null'},"after":${r.after ?? 'null'},"changed":${r.changed ?? 'null'},"captured_at":${str(r.captured_at)},"trace":${r.trace === null ? 'null' : str(r.trace)}}`;
}

// The spliced body parses to what routing builds.
{
  const [sqlRow] = (await client.query<{ body: string }>(READ_SQL_SQL, [batches[0]!.slice(0, 1)])).rows;
  const [nodeRow] = (await client.query<NodeRow>(READ_NODE_SQL, [batches[0]!.slice(0, 1)])).rows;
  const a = JSON.stringify(JSON.parse(sqlRow!.body));
  const b = JSON.stringify(JSON.parse(bodyOf(nodeRow!)));
  if (a !== b) throw new Error(`the spliced body differs from routing's:\n${a}\n${b}`);
}

interface Cost {
  wallUs: number;
  backendUs: number;
  nodeUs: number;
  walBytes: number;
  bodyBytes: number;
}

async function measure(run: (batch: string[]) => Promise<number>): Promise<Cost> {
  const lsn0 = (await client.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
  const b0 = cpuSecondsOf(backend);
  const n0 = process.cpuUsage();
  const t0 = performance.now();
  let bodyBytes = 0;
  for (const batch of batches) bodyBytes += await run(batch);
  const wall = performance.now() - t0;
  const n = process.cpuUsage(n0);
  const b = cpuSecondsOf(backend) - b0;
  const wal = (
    await client.query<{ b: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)::bigint::text AS b`, [
      lsn0,
    ])
  ).rows[0]!.b;
  const per = ids.length;
  return {
    wallUs: (wall * 1000) / per,
    backendUs: (b * 1e6) / per,
    nodeUs: (n.user + n.system) / per,
    walBytes: Number(wal) / per,
    bodyBytes: bodyBytes / per,
  };
}

/** Copies every event into `table` by `sql`, emptied first (the checkpoint: full-page images count alike). */
async function copyInto(table: string, sql: string): Promise<Cost> {
  await client.query(`TRUNCATE ${table}`);
  await client.query('CHECKPOINT').catch(() => undefined);
  return measure(async (batch) => {
    await client.query(sql, [batch]);
    return 0;
  });
}

const variants: Record<string, () => Promise<Cost>> = {
  copy: () => copyInto('probe_messages', COPY_SQL),
  'copy, no body': () => copyInto('probe_bodiless', COPY_BODILESS_SQL),
  'read rows': async () => {
    let from = Number((await client.query<{ s: string }>('SELECT min(seq) - 1 AS s FROM probe_messages')).rows[0]!.s);
    return measure(async (batch) => {
      const { rows } = await client.query<{ body: string }>(READ_ROWS_SQL, [from, (from += batch.length)]);
      return rows.reduce((n, r) => n + r.body.length, 0);
    });
  },
  'read+sql': () =>
    measure(async (batch) => {
      const { rows } = await client.query<{ body: string }>(READ_SQL_SQL, [batch]);
      return rows.reduce((n, r) => n + r.body.length, 0);
    }),
  'read+node': () =>
    measure(async (batch) => {
      const { rows } = await client.query<NodeRow>(READ_NODE_SQL, [batch]);
      let n = 0;
      // What the delivery needs besides the body: the attributes and the time, as the message row gives them.
      for (const r of rows) {
        const attributes = { op: r.op, schema: r.schema_name, table: r.table_name, capture: r.capture };
        n += bodyOf(r).length + (new Date(r.captured_at).getTime() > 0 && attributes.op ? 0 : 1);
      }
      return n;
    }),
};

// A warm-up pass of each, then the variants alternated, `reps` times; medians.
for (const run of Object.values(variants)) await run();
const results: Record<string, Cost[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < reps; r++) for (const [name, run] of Object.entries(variants)) results[name]!.push(await run());

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const table = Object.fromEntries(
  Object.entries(results).map(([name, costs]) => [
    name,
    Object.fromEntries(
      (Object.keys(costs[0]!) as (keyof Cost)[]).map((k) => [k, Math.round(median(costs.map((c) => c[k])) * 10) / 10]),
    ),
  ]),
);
console.log(`${ids.length} UPDATE events (${shape} rows), batches of ${BATCH}, medians of ${reps}:`);
console.table(table);
// Fan-out to N per event, CPU (backend + this process): today's copy plus N reads of the rows, against N reads of
// the events with the body built in PostgreSQL or in Node, or one Node read per range for all N.
const cpu = (name: string) => table[name]!.backendUs! + table[name]!.nodeUs!;
console.table(
  Object.fromEntries(
    [1, 10, 100].map((n) => [
      `fan-out ${n}`,
      {
        'copy + N reads': Math.round(cpu('copy') + n * cpu('read rows')),
        'N × read+sql': Math.round(n * cpu('read+sql')),
        'N × read+node': Math.round(n * cpu('read+node')),
        'one read+node': Math.round(cpu('read+node')),
      },
    ]),
  ),
);

await client.end();
await db.drop();

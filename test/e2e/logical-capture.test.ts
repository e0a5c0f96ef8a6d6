import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { slotName } from '../../src/capture/logical-ddl.js';
import { type RowcastConfigInput, getStatus, type RowcastRuntime, startRowcast, createPool } from '../../src/index.js';
import { formatStatus } from '../../src/app/cli/format-status.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  FAST_RUNTIME,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { patient } from '../support/patience.js';

/*
 * Logical-replication capture (mode: logical) must write exactly the events a row trigger writes, from the
 * write-ahead log, once each, and only for committed transactions. Each table exists twice: r_* captured by a
 * row trigger, l_* by logical decoding, with the same settings; the same statements run on both.
 */

let db: TestDatabase;
let receiver: WebhookReceiver;
const runtimes: RowcastRuntime[] = [];

type CaptureInput = NonNullable<RowcastConfigInput['captures']>[string];
const pairs: Record<string, { ddl: string; capture: Omit<CaptureInput, 'table'> }> = {
  types: {
    ddl: `(id bigint PRIMARY KEY, total numeric(20,4), at timestamptz, day date, span interval, doc jsonb, raw json, tags int8[],
           words text[], note text, flag boolean, ratio double precision, blob bytea, uid uuid, big text)`,
    capture: { payload: 'diff', operations: ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] },
  },
  rows: {
    ddl: '(id int PRIMARY KEY, status text, amount bigint)',
    capture: { payload: 'row', operations: ['INSERT', 'UPDATE', 'DELETE'] },
  },
  keys: {
    ddl: '(a int, b text, v text, PRIMARY KEY (a, b))',
    capture: { payload: 'keys', operations: ['INSERT', 'UPDATE', 'DELETE'] },
  },
  conds: {
    ddl: '(id int PRIMARY KEY, total int, status text, secret text)',
    capture: {
      payload: 'diff',
      columns: ['total', 'status'],
      operations: ['INSERT', 'UPDATE', 'DELETE'],
      when: { insert: 'NEW.total > 100', update: 'OLD.status IS DISTINCT FROM NEW.status', delete: 'OLD.total > 100' },
    },
  },
  nokey: { ddl: '(x int, y text)', capture: { payload: 'row', operations: ['INSERT', 'DELETE'] } },
};

function config(mode: 'row' | 'logical' = 'logical', extra: Record<string, CaptureInput> = {}): RowcastConfigInput {
  const captures: Record<string, CaptureInput> = { ...extra };
  for (const [name, { capture }] of Object.entries(pairs)) {
    captures[`r-${name}`] = { table: `r_${name}`, topic: 'changes', ...capture, mode: 'row' };
    captures[`l-${name}`] = { table: `l_${name}`, topic: 'changes', ...capture, mode };
  }
  return {
    topics: { changes: {} },
    captures,
    subscriptions: { hook: { topic: 'changes', protocol: 'http', endpoint: receiver.url } },
  };
}

before(async () => {
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start();
  for (const [name, { ddl }] of Object.entries(pairs))
    await db.pool.query(`CREATE TABLE r_${name} ${ddl}; CREATE TABLE l_${name} ${ddl}`);
  await applyConfig(db.pool, config());
  runtimes.push(await startTestRowcast(db.url));
});

after(async () => {
  for (const r of runtimes) await r.stop();
  await receiver?.close();
  await db?.drop();
});

async function both(name: string, sql: string): Promise<void> {
  await db.pool.query(sql.replaceAll('$T', `r_${name}`));
  await db.pool.query(sql.replaceAll('$T', `l_${name}`));
}

async function eventsOf(table: string) {
  const { rows } = await db.pool.query(
    `SELECT op, key, before, after, changed FROM rowcast.events WHERE table_name = $1 ORDER BY id`,
    [table],
  );
  return rows.map((r) => ({ ...r, changed: r.changed === null ? null : [...r.changed].sort() }));
}

/** Waits for the logical side to catch up, then compares event by event, in order. */
async function assertSameEvents(name: string, expectedCount: number) {
  const row = await eventsOf(`r_${name}`);
  assert.equal(row.length, expectedCount, `the row trigger of ${name} wrote ${row.length} events`);
  const logical = await eventually(async () => {
    const events = await eventsOf(`l_${name}`);
    return events.length >= expectedCount && events;
  }, `${expectedCount} logical events of ${name}`);
  assert.deepEqual(logical, row);
}

describe('logical-replication capture', () => {
  test('apply installs a publication, a slot and REPLICA IDENTITY FULL, and no trigger', async () => {
    const { rows: tables } = await db.pool.query(
      `SELECT tablename FROM pg_publication_tables WHERE pubname = 'rowcast' ORDER BY 1`,
    );
    assert.deepEqual(
      tables.map((t) => t.tablename),
      ['l_conds', 'l_keys', 'l_nokey', 'l_rows', 'l_types'],
    );
    const { rows: slots } = await db.pool.query(
      `SELECT slot_name, plugin FROM pg_replication_slots WHERE database = current_database()`,
    );
    assert.deepEqual(slots, [{ slot_name: slotName(db.name), plugin: 'pgoutput' }]);
    const { rows: ident } = await db.pool.query(
      `SELECT relname, relreplident FROM pg_class WHERE relname IN ('l_rows', 'l_nokey', 'r_rows') ORDER BY 1`,
    );
    // l_nokey captures no UPDATE, but DELETE needs the old row too.
    assert.deepEqual(ident, [
      { relname: 'l_nokey', relreplident: 'f' },
      { relname: 'l_rows', relreplident: 'f' },
      { relname: 'r_rows', relreplident: 'd' },
    ]);
    const { rows: triggers } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'l_rows'::regclass`,
    );
    assert.equal(triggers[0].n, 0);
  });

  test('every type reads back as the trigger wrote it: exact numbers, microseconds, JSON, arrays, bytes, large values', async () => {
    const big = 'x'.repeat(100_000); // stored out of line (TOAST): an UPDATE that leaves it unchanged does not log it again
    await both(
      'types',
      `INSERT INTO $T VALUES (1, 12345678901234.5678, '2024-02-29 23:59:59.123456+05:30', '2024-01-31', '1 year 2 mons 3 days 04:05:06.789',
         '{"a": [1, 2.50, "é\\"q"], "b": null}', '{"z": 1,  "a": 2}', ARRAY[9007199254740993, -1], ARRAY['a,b', 'c"d', NULL],
         E'line\\nnext \\u00e9 \\U0001F600', true, 0.1, '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '${big}'),
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL)`,
    );
    await both('types', `UPDATE $T SET total = -0.0001, note = 'changed' WHERE id = 1`);
    await both('types', `UPDATE $T SET ratio = '-Infinity', doc = '[]' WHERE id = 2`);
    await both('types', `DELETE FROM $T WHERE id = 2`);
    await both('types', `TRUNCATE $T`);
    await assertSameEvents('types', 6);
    const events = await eventsOf('l_types');
    const insert = events[0];
    const update = events.find((e) => e.op === 'UPDATE' && e.key.id === '1');
    assert.equal(insert!.after.total, '12345678901234.5678');
    assert.equal(insert!.after.at, '2024-02-29T18:29:59.123456+00:00');
    assert.deepEqual(insert!.after.tags, ['9007199254740993', '-1']);
    assert.deepEqual(update!.changed, ['note', 'total']);
    assert.equal(update!.after.big.length, 100_000, 'the unchanged large value is in the new row');
  });

  test('row, keys and column payloads, when conditions, a table without a primary key', async () => {
    await both('rows', `INSERT INTO $T VALUES (1, 'new', 9007199254740993), (2, 'new', 5)`);
    await both('rows', `UPDATE $T SET status = 'paid' WHERE id = 1`);
    await both('rows', `DELETE FROM $T WHERE id = 2`);
    await assertSameEvents('rows', 4);
    await both('keys', `INSERT INTO $T VALUES (1, 'x', 'one'), (2, 'y', 'two')`);
    await both('keys', `UPDATE $T SET v = 'changed'`);
    await both('keys', `DELETE FROM $T WHERE a = 1`);
    await assertSameEvents('keys', 5);
    await both('conds', `INSERT INTO $T VALUES (1, 50, 'a', 's'), (2, 150, 'a', 's'), (3, 500, 'a', 's')`);
    await both('conds', `UPDATE $T SET status = CASE WHEN id = 1 THEN 'b' ELSE status END, total = total + 1`);
    await both('conds', `DELETE FROM $T WHERE id IN (1, 2)`);
    await assertSameEvents('conds', 4);
    await both('nokey', `INSERT INTO $T VALUES (1, 'a'), (2, 'b')`);
    await both('nokey', `UPDATE $T SET y = 'c'`);
    await both('nokey', `DELETE FROM $T WHERE x = 1`);
    await assertSameEvents('nokey', 3);
  });

  test('a rolled-back transaction is never captured; events follow commit order and carry the writer’s xid', async () => {
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    try {
      await a.query('BEGIN');
      await a.query(`INSERT INTO l_rows VALUES (100, 'first written, committed last', 0)`);
      const { rows } = await a.query(`SELECT pg_current_xact_id()::text AS xid`);
      await b.query('BEGIN');
      await b.query(`INSERT INTO l_rows VALUES (101, 'rolled back', 0)`);
      await b.query('ROLLBACK');
      await db.pool.query(`INSERT INTO l_rows VALUES (102, 'second written, committed first', 0)`);
      await a.query('COMMIT');
      // A last row committed after them: once it is an event, everything committed before it has been decoded.
      await db.pool.query(`INSERT INTO l_rows VALUES (103, 'sentinel', 0)`);
      const events = await eventually(async () => {
        const r = await db.pool.query(
          `SELECT key ->> 'id' AS id, txid::text FROM rowcast.events e WHERE table_name = 'l_rows' AND (key ->> 'id')::int BETWEEN 100 AND 103 ORDER BY e.id`,
        );
        return r.rows.some((e) => e.id === '103') && r.rows;
      }, 'the committed rows and the sentinel after them');
      assert.deepEqual(
        events.map((e) => e.id),
        ['102', '100', '103'],
        'the rolled-back row is not an event; commit order',
      );
      assert.equal(events[1].txid, rows[0].xid);
    } finally {
      a.release();
      b.release();
    }
  });

  test('hostile schema, table and column names are quoted everywhere: publication, replica identity, capture function', async () => {
    const schema = `sch"ema'; DROP TABLE l_rows; --`;
    const table = `t$rowcast$ "x"; --`;
    await db.pool.query(
      `CREATE SCHEMA ${pg.escapeIdentifier(schema)}; CREATE TABLE ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} ("it's" int PRIMARY KEY, "dq""in" text)`,
    );
    await applyConfig(
      db.pool,
      config('logical', {
        hostile: {
          table: { schema, name: table },
          topic: 'changes',
          payload: 'diff',
          mode: 'logical',
          when: { update: `NEW."dq""in" <> 'skip'` },
        },
      }),
    );
    const target = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
    await db.pool.query(
      `INSERT INTO ${target} VALUES (1, 'a'); UPDATE ${target} SET "dq""in" = 'skip'; UPDATE ${target} SET "dq""in" = 'b'; DELETE FROM ${target}`,
    );
    const events = await eventually(async () => {
      const r = await db.pool.query(
        `SELECT op, key, before, after FROM rowcast.events WHERE capture = 'hostile' ORDER BY id`,
      );
      return r.rows.length >= 3 && r.rows;
    }, 'the hostile table’s events');
    assert.deepEqual(events, [
      { op: 'INSERT', key: { "it's": 1 }, before: null, after: { "it's": 1, 'dq"in': 'a' } },
      { op: 'UPDATE', key: { "it's": 1 }, before: { "it's": 1, 'dq"in': 'skip' }, after: { "it's": 1, 'dq"in': 'b' } },
      { op: 'DELETE', key: { "it's": 1 }, before: { "it's": 1, 'dq"in': 'b' }, after: null },
    ]);
    assert.equal((await db.pool.query(`SELECT to_regclass('l_rows') IS NOT NULL AS ok`)).rows[0].ok, true);
    const { rows: published } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_publication_tables WHERE pubname = 'rowcast' AND schemaname = $1 AND tablename = $2`,
      [schema, table],
    );
    assert.equal(published[0].n, 1, 'the hostile table is in the publication');
  });

  test('a partitioned table: its partitions log full old rows too, including a partition added later (apply sets it)', async () => {
    await db.pool
      .query(`CREATE TABLE parts (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu'); CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us')`);
    const parts = { parts: { table: 'parts', topic: 'changes', payload: 'diff' as const, mode: 'logical' as const } };
    await applyConfig(db.pool, config('logical', parts));
    await db.pool.query(`CREATE TABLE parts_ap PARTITION OF parts FOR VALUES IN ('ap')`);
    // Nothing in the config changed; apply still sees the new partition's identity.
    await applyConfig(db.pool, config('logical', parts));
    const { rows: ident } = await db.pool.query(
      `SELECT relname, relreplident FROM pg_class WHERE relname LIKE 'parts%' AND relkind IN ('r', 'p') ORDER BY 1`,
    );
    assert.deepEqual(
      ident.map((r) => `${r.relname}:${r.relreplident}`),
      ['parts:f', 'parts_ap:f', 'parts_eu:f', 'parts_us:f'],
    );
    await db.pool.query(
      `INSERT INTO parts VALUES (1, 'eu', 'a'), (2, 'ap', 'b'); UPDATE parts SET v = v || '!'; DELETE FROM parts WHERE region = 'ap'`,
    );
    const events = await eventually(async () => {
      const r = await db.pool.query(
        `SELECT op, table_name, before, after FROM rowcast.events WHERE capture = 'parts' ORDER BY id`,
      );
      return r.rows.length >= 5 && r.rows;
    }, 'the partitioned table’s events');
    assert.deepEqual(new Set(events.map((e) => e.table_name)), new Set(['parts']), 'published as the root table');
    const deleted = events.find((e) => e.op === 'DELETE');
    assert.deepEqual(deleted.before, { id: 2, region: 'ap', v: 'b!' }, 'the whole old row, not only its key');
    assert.deepEqual(events.find((e) => e.op === 'UPDATE' && e.after.id === 1).before, { id: 1, region: 'eu', v: 'a' });
  });

  test('the webhook receives captured changes as messages', async () => {
    await db.pool.query(`INSERT INTO l_keys VALUES (10, 'p', 'hello')`);
    const hit = await eventually(
      () => receiver.requests.find((r) => r.json?.attributes?.table === 'l_keys' && r.json.body.key.a === 10),
      'the webhook request',
    );
    assert.equal(hit.json.attributes.capture, 'l-keys');
    assert.deepEqual(hit.json.body.key, { a: 10, b: 'p' });
    assert.equal(hit.json.body.op, 'INSERT');
  });

  test('exactly once when the stream breaks mid-burst and another process takes over', async () => {
    runtimes.push(await startTestRowcast(db.url));
    const writer = createPool(db.url, { max: 4 });
    const rows = 2000;
    try {
      const writes = (async () => {
        for (let i = 0; i < rows; i += 10) {
          await writer.query(`INSERT INTO l_rows SELECT g, 'burst', g FROM generate_series($1::int, $1::int + 9) g`, [
            10_000 + i,
          ]);
        }
      })();
      // Break whichever connection streams, twice, while the burst is written.
      for (let k = 0; k < 2; k++) {
        await new Promise((r) => setTimeout(r, 150));
        await db.pool.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = current_database() AND active_pid IS NOT NULL`,
        );
      }
      await writes;
      // The process that streamed may have been either: stop the first one, the other goes on.
      await runtimes.shift()!.stop();
      const n = await eventually(
        async () => {
          const r = await db.pool.query(
            `SELECT count(*)::int AS n, count(DISTINCT key)::int AS keys FROM rowcast.events WHERE table_name = 'l_rows' AND (key ->> 'id')::int >= 10000`,
          );
          return r.rows[0].n >= rows && r.rows[0];
        },
        'every row of the burst as an event',
        30_000,
      );
      // A row committed after the burst, read by the one process left: once it is an event, no copy can follow.
      await db.pool.query(`INSERT INTO l_rows VALUES (5000, 'sentinel', 0)`);
      await eventually(
        async () =>
          (await db.pool.query(`SELECT 1 FROM rowcast.events WHERE table_name = 'l_rows' AND key ->> 'id' = '5000'`))
            .rowCount === 1,
        'the sentinel after the burst',
        30_000,
      );
      const final = await db.pool.query(
        `SELECT count(*)::int AS n, count(DISTINCT key)::int AS keys FROM rowcast.events WHERE table_name = 'l_rows' AND (key ->> 'id')::int >= 10000`,
      );
      assert.deepEqual(final.rows[0], { n: rows, keys: rows }, `each row once (first seen ${JSON.stringify(n)})`);
    } finally {
      await writer.end();
    }
  });

  test('what the slot sends again after a crash (written, not yet confirmed to the slot) becomes no second event', async () => {
    // A copy of the slot keeps its position from before these writes; once they are events, the copy takes the
    // slot's place: to the reader it is a slot that never heard its confirmations, as after a crash right after a commit.
    const slot = slotName(db.name);
    await db.pool.query(`SELECT pg_copy_logical_replication_slot($1, $2)`, [slot, `${slot}_copy`]);
    for (let i = 0; i < 20; i++) await db.pool.query(`INSERT INTO l_rows VALUES ($1, 'sent twice', 0)`, [20_000 + i]);
    const count = async () =>
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM rowcast.events WHERE table_name = 'l_rows' AND (key ->> 'id')::int BETWEEN 20000 AND 29999`,
        )
      ).rows[0].n;
    await eventually(async () => (await count()) === 20, 'the 20 rows as events');
    for (const r of runtimes.splice(0)) await r.stop();
    await db.pool.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
    await db.pool.query(`SELECT pg_copy_logical_replication_slot($1, $2)`, [`${slot}_copy`, slot]);
    await db.pool.query(`SELECT pg_drop_replication_slot($1)`, [`${slot}_copy`]);
    runtimes.push(await startTestRowcast(db.url));
    await db.pool.query(`INSERT INTO l_rows VALUES (20100, 'after the restart', 0)`);
    // It commits after everything the slot sends again, so once it is an event the rest has been decided.
    await eventually(
      async () =>
        (await db.pool.query(`SELECT 1 FROM rowcast.events WHERE table_name = 'l_rows' AND key ->> 'id' = '20100'`))
          .rowCount,
      'the row written after the restart',
    );
    assert.equal(await count(), 21, 'the 20 rows sent again were skipped');
  });

  test('/metrics and rowcast status show whether the slot is streamed and how far behind it is', async () => {
    const status = await getStatus(db.pool);
    assert.equal(status.captures.find((c) => c.name === 'l-rows')?.mode, 'logical');
    assert.equal(status.captures.find((c) => c.name === 'r-rows')?.mode, 'row');
    assert.equal(status.logicalCapture?.slot, slotName(db.name));
    assert.equal(status.logicalCapture?.streaming, true);
    assert.match(
      formatStatus(status),
      /logical capture: slot \S+ streamed by a rowcast process; \d+\.\d MB of log not yet captured/,
    );
    const withHttp = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
    runtimes.push(withHttp);
    const text = await (await fetch(`${withHttp.httpUrl}/metrics`)).text();
    const slot = slotName(db.name);
    assert.match(text, new RegExp(`rowcast_capture_slot_active\\{slot="${slot}"\\} 1`));
    assert.match(text, new RegExp(`rowcast_capture_slot_lag_bytes\\{slot="${slot}"\\} \\d+`));
  });

  test('apply refuses logical capture for a role without REPLICATION, naming the fix', async () => {
    const role = `rowcast_norepl_${db.name}`.slice(0, 60);
    await db.pool.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN NOREPLICATION NOSUPERUSER PASSWORD 'norepl'`);
    await db.pool.query(
      `GRANT USAGE ON SCHEMA rowcast TO ${pg.escapeIdentifier(role)}; GRANT SELECT ON ALL TABLES IN SCHEMA rowcast TO ${pg.escapeIdentifier(role)}`,
    );
    const url = new URL(db.url);
    url.username = role;
    url.password = 'norepl';
    const pool = createPool(url.toString(), { max: 1 });
    try {
      await assert.rejects(applyConfig(pool, config()), (err: Error & { problems?: readonly string[] }) => {
        assert.match(
          [err.message, ...(err.problems ?? [])].join('\n'),
          /lacks the REPLICATION attribute; ALTER ROLE … REPLICATION, or use mode 'row'/,
        );
        return true;
      });
    } finally {
      await pool.end();
      await db.pool.query(
        `REVOKE ALL ON ALL TABLES IN SCHEMA rowcast FROM ${pg.escapeIdentifier(role)}; REVOKE ALL ON SCHEMA rowcast FROM ${pg.escapeIdentifier(role)}; DROP ROLE ${pg.escapeIdentifier(role)}`,
      );
    }
  });

  test('switching to triggers removes the publication and the slot; switching back installs them again', async () => {
    await applyConfig(db.pool, config('row'));
    const gone = await db.pool.query(
      `SELECT (SELECT count(*) FROM pg_publication WHERE pubname = 'rowcast')::int AS pubs, (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())::int AS slots`,
    );
    assert.deepEqual(gone.rows[0], { pubs: 0, slots: 0 });
    const { rows: triggers } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'l_rows'::regclass`,
    );
    assert.equal(triggers[0].n, 3);
    await db.pool.query(`INSERT INTO l_rows VALUES (50000, 'by trigger', 0)`);
    await applyConfig(db.pool, config('logical'));
    const { rows: none } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'l_rows'::regclass`,
    );
    assert.equal(none[0].n, 0);
    await db.pool.query(`INSERT INTO l_rows VALUES (50001, 'by the log', 0)`);
    const rows = await eventually(
      async () => {
        const r = await db.pool.query(
          `SELECT after ->> 'status' AS status FROM rowcast.events WHERE table_name = 'l_rows' AND (key ->> 'id')::int >= 50000 ORDER BY id`,
        );
        return r.rows.length >= 2 && r.rows;
      },
      'one event from the trigger and one from the log',
      20_000,
    );
    assert.deepEqual(
      rows.map((r) => r.status),
      ['by trigger', 'by the log'],
    );
  });

  describe('transactions larger than a chunk (staged, promoted at the commit)', () => {
    const CHUNK = 100;
    /** Events of a table whose key (`id`, or `a` in *_keys) is in [from, from + 9999]: each test uses its own range. */
    const eventsIn = async (table: string, from: number) =>
      (
        await db.pool.query(
          `SELECT id, op, key, before, after, changed FROM rowcast.events WHERE table_name = $1 AND (COALESCE(key ->> 'id', key ->> 'a'))::int BETWEEN $2 AND $2 + 9999 ORDER BY id`,
          [table, from],
        )
      ).rows;
    const staged = async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.capture_staging`)).rows[0].n as number;
    /** Commits a row after the others: once it is an event, capture has decided on everything before it. */
    const marker = async (id: number) => {
      await db.pool.query(`INSERT INTO l_rows VALUES ($1, 'marker', 0)`, [id]);
      await eventually(
        async () =>
          (
            await db.pool.query(`SELECT 1 FROM rowcast.events WHERE table_name = 'l_rows' AND key ->> 'id' = $1`, [
              String(id),
            ])
          ).rowCount,
        `the marker row ${id}`,
        30_000,
      );
    };

    const start = async () =>
      runtimes.push(
        await startRowcast({
          databaseUrl: db.url,
          runtime: FAST_RUNTIME,
          logger: createLogger('silent'),
          logicalCapture: { chunkRows: CHUNK },
        }),
      );

    before(async () => {
      for (const r of runtimes.splice(0)) await r.stop();
      await start();
    });

    test('a transaction of many chunks, over two captures and three operations, arrives whole, once, as the trigger writes it', async () => {
      // 1,050 inserts, 300 updates, 50 deletes in l_rows and 40 inserts in l_keys between them: parts of several
      // functions and operations, across chunk boundaries. The same statements on the r_* twins give the reference.
      const sql = `BEGIN;
        INSERT INTO $Trows SELECT g, 'new', g FROM generate_series(60000, 61049) g;
        INSERT INTO $Tkeys SELECT g, 'k', 'v' FROM generate_series(60000, 60039) g;
        UPDATE $Trows SET status = 'paid', amount = amount + 1 WHERE id BETWEEN 60100 AND 60399;
        DELETE FROM $Trows WHERE id BETWEEN 61000 AND 61049;
        COMMIT`;
      await db.pool.query(sql.replaceAll('$T', 'r_'));
      await db.pool.query(sql.replaceAll('$T', 'l_'));
      await marker(69999);
      const strip = (events: Record<string, unknown>[]) =>
        events.map(({ id: _id, ...e }) => e).filter((e) => (e.key as { id?: number }).id !== 69999);
      const rows = await eventsIn('l_rows', 60000);
      assert.equal(rows.length, 1050 + 300 + 50 + 1);
      assert.deepEqual(strip(rows), strip(await eventsIn('r_rows', 60000)), 'the same events, in the same order');
      assert.deepEqual(strip(await eventsIn('l_keys', 60000)), strip(await eventsIn('r_keys', 60000)));
      assert.equal(await staged(), 0, 'nothing left staged');
    });

    test('a rolled-back transaction of many chunks gives nothing', async () => {
      await db.pool.query(
        `BEGIN; INSERT INTO l_rows SELECT g, 'rolled back', g FROM generate_series(70000, 71049) g; ROLLBACK`,
      );
      await marker(79999);
      assert.deepEqual(
        (await eventsIn('l_rows', 70000)).map((e) => e.key.id),
        [79999],
      );
    });

    test('killed with a transaction staged: the next stream stages it again and promotes it once', async () => {
      // The test holds the slot's progress row: the reader stages the whole transaction, then its promotion waits.
      const holder = await db.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM rowcast.capture_progress WHERE slot = $1 FOR UPDATE`, [slotName(db.name)]);
        await db.pool.query(`INSERT INTO l_rows SELECT g, 'staged', g FROM generate_series(80000, 81049) g`);
        await eventually(
          async () =>
            (await staged()) === 1050 &&
            (
              await db.pool.query(
                `SELECT 1 FROM pg_stat_activity WHERE application_name = 'rowcast logical capture' AND wait_event_type = 'Lock'`,
              )
            ).rowCount,
          'the whole transaction staged and its promotion waiting',
        );
        // The reader's connections die mid-transaction (its stream and the promotion), as in a crash.
        await db.pool.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'rowcast logical capture' AND pid <> pg_backend_pid()`,
        );
        await holder.query('ROLLBACK');
      } finally {
        holder.release();
      }
      await marker(89999);
      const events = await eventsIn('l_rows', 80000);
      assert.equal(events.length, 1051);
      assert.equal(new Set(events.map((e) => e.key.id)).size, 1051, 'each change once');
      assert.equal(await staged(), 0, 'nothing left staged');
    });

    /**
     * A reader that lost the slot (its stream broke, another process took over and wrote further) still has a batch
     * in flight. The test holds the slot's progress row so that the batch waits at its write; meanwhile "another
     * reader" moves the position past it. Released, the stale write must be refused whole: no event, no position
     * moved back. (Before the fence the batch's events were written a second time under new ids by the stale
     * reader, and the position went back to the batch's end; a staged transaction was already refused.)
     */
    for (const [what, rows, from] of [
      ['a batch', 1, 100000],
      ['a staged transaction', 1050, 110000],
    ] as const) {
      test(
        `a reader whose slot was taken over has ${what} in flight refused, and stops`,
        { timeout: patient(60_000) },
        async () => {
          const slot = slotName(db.name);
          const holder = await db.pool.connect();
          // eslint-disable-next-line no-useless-assignment -- read after the try, which sets it or fails the test
          let takenOver = '';
          try {
            await holder.query('BEGIN');
            await holder.query(`SELECT 1 FROM rowcast.capture_progress WHERE slot = $1 FOR UPDATE`, [slot]);
            await db.pool.query(
              `INSERT INTO l_rows SELECT g, 'in flight', g FROM generate_series($1::int, $1::int + $2::int - 1) g`,
              [from, rows],
            );
            await eventually(
              async () =>
                (
                  await db.pool.query(
                    `SELECT 1 FROM pg_stat_activity WHERE application_name = 'rowcast logical capture' AND wait_event_type = 'Lock'`,
                  )
                ).rowCount,
              'the reader’s write waiting for the progress row',
            );
            // Another reader took over and wrote past the in-flight transaction.
            takenOver = (
              await holder.query<{ lsn: string }>(
                `UPDATE rowcast.capture_progress SET lsn = pg_current_wal_insert_lsn() WHERE slot = $1 RETURNING lsn::text`,
                [slot],
              )
            ).rows[0]!.lsn;
            await holder.query('COMMIT');
          } finally {
            holder.release();
          }
          await eventually(
            async () =>
              !(
                await db.pool.query(
                  `SELECT 1 FROM pg_stat_activity WHERE application_name = 'rowcast logical capture' AND wait_event_type = 'Lock'`,
                )
              ).rowCount,
            'the reader’s write answered',
          );
          // The refused reader streams again from the recorded position: a row committed now arrives, once.
          await marker(from + 9999);
          assert.deepEqual(
            (await eventsIn('l_rows', from)).map((e) => e.key.id),
            [from + 9999],
            'the in-flight changes were not written by the reader that lost the slot',
          );
          const { rows: progress } = await db.pool.query(
            `SELECT lsn >= $2::pg_lsn AS ahead FROM rowcast.capture_progress WHERE slot = $1`,
            [slot, takenOver],
          );
          assert.equal(progress[0].ahead, true, 'the recorded position never went back');
        },
      );
    }

    test(
      'stopping while a promotion runs cancels it instead of waiting for it; the next process promotes the transaction once',
      { timeout: patient(60_000) },
      async () => {
        const holder = await db.pool.connect();
        try {
          await holder.query('BEGIN');
          await holder.query(`SELECT 1 FROM rowcast.capture_progress WHERE slot = $1 FOR UPDATE`, [slotName(db.name)]);
          await db.pool.query(`INSERT INTO l_rows SELECT g, 'stopped', g FROM generate_series(90000, 91049) g`);
          await eventually(
            async () =>
              (await staged()) === 1050 &&
              (
                await db.pool.query(
                  `SELECT 1 FROM pg_stat_activity WHERE application_name = 'rowcast logical capture' AND wait_event_type = 'Lock'`,
                )
              ).rowCount,
            'the whole transaction staged and its promotion waiting',
          );
          // The promotion still waits for the row this test holds: stop() returns all the same.
          await runtimes.pop()!.stop();
          assert.deepEqual(await eventsIn('l_rows', 90000), [], 'nothing of the cancelled promotion');
          await holder.query('ROLLBACK');
        } finally {
          holder.release();
        }
        await start();
        await marker(99999);
        const events = await eventsIn('l_rows', 90000);
        assert.equal(events.length, 1051);
        assert.equal(new Set(events.map((e) => e.key.id)).size, 1051, 'each change once');
        assert.equal(await staged(), 0, 'nothing left staged');
      },
    );
  });
});

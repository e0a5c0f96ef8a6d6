import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { parseConfig, type RowcastConfigInput, getStatus, type RowcastRuntime, startRowcast } from '../../src/index.js';
import { apply } from '../../src/admin/config/apply.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { privateMariadbUnavailable, startPrivateMariadb } from '../support/private-mariadb.js';
import { MARIADB, mariadbUnavailable } from '../support/mysql-faults.js';

/*
 * A MySQL source against the machine's real MariaDB (binlog on: .ci/run turns it on). Each test has its own
 * MariaDB database and its own store; the events are read from the topic's log (routed, as subscribers get them).
 */

const handler = (name: string) => `test/fixtures/handlers/${name}.ts`;

const skip = await mariadbUnavailable();
const noPrivateMariadb = await privateMariadbUnavailable();

let admin: mysql.Connection;
before(async () => {
  if (!skip) admin = await mysql.createConnection({ uri: MARIADB, multipleStatements: true });
});
after(async () => {
  await admin?.end();
});

/**
 * A MariaDB database and a store of one test, with a rowcast process reading the source: on the machine's MariaDB,
 * or on another server (a private one: private-mariadb.ts) given with its admin connection.
 */
class Scenario {
  readonly database = `rowcast_t_${randomBytes(5).toString('hex')}`;
  store!: TestDatabase;
  runtime: RowcastRuntime | null = null;
  config!: RowcastConfigInput;
  readonly serverId = randomInt(100_000, 4_000_000);

  constructor(private readonly server?: { url: string; admin: mysql.Connection }) {}

  private get url(): string {
    return this.server?.url ?? MARIADB;
  }

  private get admin(): mysql.Connection {
    return this.server?.admin ?? admin;
  }

  async setUp(ddl: string[], config: (db: string) => RowcastConfigInput): Promise<void> {
    await this.admin.query(`CREATE DATABASE ${this.database}`);
    for (const sql of ddl) await this.admin.query(sql.replaceAll('$db', this.database));
    this.store = await createTestDatabase();
    this.config = config(this.database);
    this.config.sources = { maria: { kind: 'mysql', url: this.url, serverId: this.serverId } };
    await applyConfig(this.store.pool, this.config);
  }

  async start(logger = createLogger('silent')): Promise<void> {
    const parsed = parseConfig(this.config, 'test config');
    this.runtime = await startRowcast({
      databaseUrl: this.store.url,
      runtime: FAST_RUNTIME,
      functions: parsed.functions,
      sources: parsed.sources,
      logger,
    });
  }

  async stop(): Promise<void> {
    await this.runtime?.stop();
    this.runtime = null;
  }

  async tearDown(): Promise<void> {
    await this.stop();
    await this.store?.drop();
    await this.admin.query(`DROP DATABASE IF EXISTS ${this.database}`);
  }

  /** Runs statements on MariaDB in one session (BEGIN … COMMIT/ROLLBACK included). */
  async sql(...statements: string[]): Promise<void> {
    const c = await mysql.createConnection({ uri: this.url, database: this.database });
    try {
      for (const s of statements) await c.query(s);
    } finally {
      await c.end();
    }
  }

  async bodies(topic = 'changes'): Promise<Record<string, any>[]> {
    const { rows } = await this.store.pool.query<{ body: string }>(
      'SELECT body FROM rowcast.log_messages($1, 0, 9223372036854775807) ORDER BY event_id',
      [topic],
    );
    return rows.map((r) => JSON.parse(r.body) as Record<string, any>);
  }
}

const changes = (db: string, capture: Record<string, unknown> = {}): RowcastConfigInput => ({
  topics: { changes: {} },
  captures: { orders: { source: 'maria', table: `${db}.orders`, topic: 'changes', payload: 'diff', ...capture } },
});

describe('MySQL/MariaDB source', { skip: skip ?? false }, () => {
  test('INSERT, UPDATE and DELETE of a captured table become events with the same shape, naming their source', async () => {
    const s = new Scenario();
    try {
      await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY, status VARCHAR(20), total DECIMAL(10,2))'], (db) =>
        changes(db),
      );
      await s.start();
      await s.sql(
        `INSERT INTO orders VALUES (1, 'new', 10.50)`,
        `UPDATE orders SET status = 'paid' WHERE id = 1`,
        'DELETE FROM orders WHERE id = 1',
      );
      const bodies = await eventually(async () => ((await s.bodies()).length >= 3 ? s.bodies() : null), 'three events');
      assert.deepEqual(
        bodies.map((b) => [b.op, b.key, b.before, b.after, b.changed]),
        [
          ['INSERT', { id: 1 }, null, { id: 1, status: 'new', total: '10.50' }, null],
          [
            'UPDATE',
            { id: 1 },
            { id: 1, status: 'new', total: '10.50' },
            { id: 1, status: 'paid', total: '10.50' },
            ['status'],
          ],
          ['DELETE', { id: 1 }, { id: 1, status: 'paid', total: '10.50' }, null, null],
        ],
      );
      for (const b of bodies) {
        assert.equal(b.source.kind, 'mysql');
        assert.equal(b.source.server, 'maria');
        assert.equal(b.source.capture, 'orders');
        assert.equal(b.source.database, s.database);
        assert.equal(b.source.table, 'orders');
        assert.match(b.source.position.gtid, /^\d+-\d+-\d+$/);
        assert.match(b.source.position.file, /\S/);
        assert.ok(b.source.position.pos > 0);
      }
      assert.equal(new Set(bodies.map((b) => b.source.position.gtid)).size, 3, 'one transaction each');
      assert.deepEqual(
        (await getStatus(s.store.pool)).captures.map((c) => [c.name, c.table, c.mode]),
        [['orders', `${s.database}.orders`, 'binlog']],
      );
    } finally {
      await s.tearDown();
    }
  });

  test('MySQL types map as documented', async () => {
    const s = new Scenario();
    try {
      await s.setUp(
        [
          `CREATE TABLE $db.orders (id BIGINT UNSIGNED PRIMARY KEY, dt DATETIME(3), ts TIMESTAMP(6) NULL, d DATE, j JSON, b BLOB, bits BIT(10),
            e ENUM('small','large'), tags SET('red','green','blue'), amount DECIMAL(30,10), neg BIGINT, f DOUBLE, small INT UNSIGNED, note TEXT, nothing VARCHAR(5))`,
        ],
        (db) => changes(db, { payload: 'row' }),
      );
      await s.start();
      await s.sql(
        `SET time_zone = '+00:00'`,
        `INSERT INTO orders VALUES (18446744073709551615, '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456', '2024-02-03', '{"a": [1, 2], "b": null}',
          x'00ff10', b'1010010101', 'large', 'red,blue', '12345678901234567890.0123456789', -9223372036854775808, 1.5, 4294967295, 'héllo', NULL)`,
      );
      const [body] = await eventually(async () => ((await s.bodies()).length ? s.bodies() : null), 'the event');
      assert.deepEqual(body!.key, { id: '18446744073709551615' });
      assert.deepEqual(body!.after, {
        id: '18446744073709551615',
        dt: '2024-01-02T03:04:05.678',
        ts: '2024-01-02T03:04:05.123456+00:00',
        d: '2024-02-03',
        j: { a: [1, 2], b: null },
        b: Buffer.from([0, 255, 16]).toString('base64'),
        bits: '1010010101',
        e: 'large',
        tags: ['red', 'blue'],
        amount: '12345678901234567890.0123456789',
        neg: '-9223372036854775808',
        f: 1.5,
        small: 4294967295,
        note: 'héllo',
        nothing: null,
      });
    } finally {
      await s.tearDown();
    }
  });

  test('a rolled-back transaction gives nothing', async () => {
    const s = new Scenario();
    try {
      await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY, status VARCHAR(20))'], (db) =>
        changes(db, { payload: 'row' }),
      );
      await s.start();
      await s.sql(
        'BEGIN',
        `INSERT INTO orders VALUES (1, 'rolled back')`,
        `UPDATE orders SET status = 'x'`,
        'ROLLBACK',
      );
      await s.sql(`INSERT INTO orders VALUES (2, 'committed')`);
      await eventually(async () => (await s.bodies()).some((b) => b.after.id === 2), 'the committed row');
      // The binlog is read in commit order: everything before the committed row has been read by now.
      assert.deepEqual(
        (await s.bodies()).map((b) => b.after),
        [{ id: 2, status: 'committed' }],
      );
    } finally {
      await s.tearDown();
    }
  });

  test("triggers calling Aurora MySQL's lambda_async unqualified (and CALL mysql.lambda_async) invoke the function; rolled back, they do not; lambda_sync is refused", async () => {
    const s = new Scenario();
    try {
      await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY, status VARCHAR(20))'], (db) => ({
        topics: { out: {} },
        functions: {
          notify: {
            handler: handler('publisher'),
            environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-2:123456789100:out' },
          },
        },
        captures: { orders: { source: 'maria', table: `${db}.orders`, topic: 'out', payload: 'keys' } },
      }));
      // The reference's trigger, as written for Aurora MySQL (after apply installed lambda_async in the database).
      await s.sql(`CREATE TRIGGER orders_notify AFTER INSERT ON orders FOR EACH ROW
        BEGIN
          SELECT lambda_async('arn:aws:lambda:us-east-2:123456789100:function:notify', JSON_OBJECT('id', NEW.id, 'status', NEW.status)) INTO @out;
        END`);
      // Aurora MySQL's older form.
      await s.sql(`CREATE TRIGGER orders_shipped AFTER UPDATE ON orders FOR EACH ROW
        CALL mysql.lambda_async('arn:aws:lambda:us-east-2:123456789100:function:notify', JSON_OBJECT('id', NEW.id, 'status', NEW.status))`);
      await s.start();
      await s.sql('BEGIN', `INSERT INTO orders VALUES (1, 'rolled back')`, 'ROLLBACK');
      await s.sql(`INSERT INTO orders VALUES (2, 'paid')`);
      await s.sql('BEGIN', `UPDATE orders SET status = 'rolled back'`, 'ROLLBACK');
      await s.sql(`UPDATE orders SET status = 'shipped' WHERE id = 2`);
      const done = await eventually(async () => {
        const { rows } = await s.store.pool.query<{ function: string; payload: string; state: string }>(
          'SELECT function, payload, state FROM rowcast.invocations ORDER BY created_at, payload',
        );
        return rows.filter((r) => r.state === 'done').length === 2 ? rows : null;
      }, 'the invocations to run');
      assert.deepEqual(
        done.map((r) => [r.function, JSON.parse(r.payload), r.state]),
        [
          ['notify', { id: 2, status: 'paid' }, 'done'],
          ['notify', { id: 2, status: 'shipped' }, 'done'],
        ],
      );
      const [[outbox]] = (await admin.query(`SELECT count(*) AS n FROM ${s.database}.rowcast_lambda_outbox`)) as [
        { n: number }[],
        unknown,
      ];
      assert.equal(Number(outbox!.n), 0, 'the outbox stays empty (its rows live in the binlog)');
      await assert.rejects(s.sql(`SELECT lambda_sync('notify', '{}')`), /lambda_sync is not supported/);
    } finally {
      await s.tearDown();
    }
  });

  test('a restarted reader resumes from the stored position: nothing lost, nothing twice', async () => {
    const s = new Scenario();
    try {
      await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY)'], (db) => changes(db, { payload: 'keys' }));
      await s.start();
      await s.sql('INSERT INTO orders VALUES (1), (2)');
      await eventually(async () => (await s.bodies()).length === 2, 'the first two events');
      await s.stop();
      // Written while no reader runs, and in several transactions.
      await s.sql('INSERT INTO orders VALUES (3)', 'INSERT INTO orders VALUES (4)', 'DELETE FROM orders WHERE id = 1');
      await s.start();
      await s.sql('INSERT INTO orders VALUES (5)');
      await eventually(
        async () => (await s.bodies()).some((b) => b.key.id === 5),
        'the event written after the restart',
      );
      const bodies = await s.bodies();
      assert.deepEqual(
        bodies.map((b) => [b.op, b.key.id]),
        [
          ['INSERT', 1],
          ['INSERT', 2],
          ['INSERT', 3],
          ['INSERT', 4],
          ['DELETE', 1],
          ['INSERT', 5],
        ],
      );
      assert.equal(new Set(bodies.map((b) => b.id)).size, bodies.length, 'distinct event ids');
      const { rows } = await s.store.pool.query<{ position: { gtid: string } }>(
        `SELECT position FROM rowcast.source_progress WHERE source = 'maria'`,
      );
      assert.equal(rows[0]!.position.gtid, bodies.at(-1)!.source.position.gtid);
    } finally {
      await s.tearDown();
    }
  });

  test('DDL on a captured table while reading: rows before and after the change are read with their own columns', async () => {
    const s = new Scenario();
    try {
      await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY, note VARCHAR(10))'], (db) =>
        changes(db, { payload: 'row' }),
      );
      await s.start();
      await s.sql(`INSERT INTO orders VALUES (1, 'before')`);
      // The reader is streaming (it wrote the first event) when the table changes.
      await eventually(async () => (await s.bodies()).length === 1, 'the first event');
      await s.sql(
        'ALTER TABLE orders ADD COLUMN doc JSON, DROP COLUMN note',
        `INSERT INTO orders VALUES (2, '{"x": 1}')`,
      );
      await eventually(async () => (await s.bodies()).length === 2, 'both events');
      assert.deepEqual(
        (await s.bodies()).map((b) => b.after),
        [
          { id: 1, note: 'before' },
          { id: 2, doc: { x: 1 } },
        ],
      );
    } finally {
      await s.tearDown();
    }
  });

  test(
    'a recorded position purged from the binlog is a clear error and no gap is skipped; the documented resync goes on from now',
    { skip: noPrivateMariadb },
    async () => {
      // Purging binlogs would break whatever else reads the machine's MariaDB: a MariaDB of this test's own.
      const server = await startPrivateMariadb();
      const own = await mysql.createConnection({ uri: server.url, multipleStatements: true });
      const s = new Scenario({ url: server.url, admin: own });
      try {
        await s.setUp(['CREATE TABLE $db.orders (id INT PRIMARY KEY)'], (db) => changes(db, { payload: 'keys' }));
        await s.start();
        await s.sql('INSERT INTO orders VALUES (1)');
        await eventually(async () => (await s.bodies()).length === 1, 'the first event');
        await s.stop();
        await s.sql('INSERT INTO orders VALUES (2)');
        await own.query('FLUSH BINARY LOGS');
        const [[status]] = (await own.query('SHOW MASTER STATUS')) as [{ File: string }[], unknown];
        // MariaDB keeps a file that a binlog dump thread still reads (a stopped reader's, until the server notices).
        await eventually(async () => {
          await own.query(`PURGE BINARY LOGS TO '${status!.File}'`);
          const [logs] = (await own.query('SHOW BINARY LOGS')) as [{ Log_name: string }[], unknown];
          return logs[0]!.Log_name === status!.File;
        }, 'the older binlogs purged');
        const lines: string[] = [];
        await s.start(createLogger('warn', { write: (line: string) => void lines.push(line) }));
        const line = await eventually(() => lines.find((l) => l.includes('purged')), 'the error');
        const logged = JSON.parse(line) as { level: number; msg: string };
        assert.equal(logged.level, 50, 'an error');
        assert.match(
          logged.msg,
          /^source maria: the binlog position rowcast recorded \(GTID [0-9-]+ \(binlog\.\d+:\d+\)\) is no longer on the server \(purged\).*will not skip the gap by itself\. Resync: `rowcast apply --resync maria`.*`rowcast backfill orders`.*docs\/sources\.md/,
        );
        assert.deepEqual(
          (await s.bodies()).map((b) => b.key.id),
          [1],
          'nothing written past the gap',
        );
        // docs/sources.md, "Position purged": apply --resync records the server's current position.
        const resynced = await apply(s.store.pool, parseConfig(s.config, 'test config'), { resync: ['maria'] });
        assert.ok(
          resynced.steps.some((step) =>
            step.summary.startsWith("source maria: binlog reading restarts at the server's current position"),
          ),
        );
        await s.sql('INSERT INTO orders VALUES (3)');
        await eventually(async () => (await s.bodies()).length === 2, 'the event after the resync');
        assert.deepEqual(
          (await s.bodies()).map((b) => b.key.id),
          [1, 3],
        );
        // Only a MySQL source that a capture reads can be resynced.
        await assert.rejects(
          apply(s.store.pool, parseConfig(s.config, 'test config'), { resync: ['nope'] }),
          /--resync nope: the config has no source "nope"/,
        );
      } finally {
        await s.tearDown();
        await own.end();
        await server.stop();
      }
    },
  );

  test('apply says exactly what the MySQL user lacks, without printing its password', async () => {
    const s = new Scenario();
    const user = `rowcast_t_${randomBytes(4).toString('hex')}`;
    const password = `pw_${randomBytes(8).toString('hex')}`;
    try {
      await admin.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'`);
      await admin.query(`CREATE DATABASE ${s.database}`);
      await admin.query(`CREATE TABLE ${s.database}.orders (id INT PRIMARY KEY)`);
      await admin.query(`GRANT SELECT ON ${s.database}.* TO '${user}'@'127.0.0.1'`);
      s.store = await createTestDatabase();
      process.env.ROWCAST_TEST_MARIA_URL = `mysql://${user}:${password}@127.0.0.1:3306`;
      const err = await applyConfig(s.store.pool, {
        ...changes(s.database),
        sources: { maria: { kind: 'mysql', url: { env: 'ROWCAST_TEST_MARIA_URL' } } },
      }).then(
        () => assert.fail('apply should refuse'),
        (e: Error) => e,
      );
      assert.match(
        err.message,
        /lacks REPLICATION SLAVE, SELECT, REPLICATION CLIENT on \*\.\*; GRANT REPLICATION SLAVE, SELECT, REPLICATION CLIENT ON \*\.\*/,
      );
      assert.doesNotMatch(err.message, new RegExp(password));
      const { rows } = await s.store.pool.query('SELECT 1 FROM rowcast.captures');
      assert.equal(rows.length, 0, 'nothing applied');
    } finally {
      delete process.env.ROWCAST_TEST_MARIA_URL;
      await admin.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`);
      await s.tearDown();
    }
  });
});

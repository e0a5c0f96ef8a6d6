import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { type RowcastRuntime, startRowcast } from '../../src/app/runtime.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyConfig, createTestDatabase, eventually, FAST_RUNTIME, type TestDatabase } from '../support/database.js';
import { MARIADB, mariadbUnavailable } from '../support/mysql-faults.js';

/*
 * A DDL change on a captured MariaDB table while rowcast does not read (stopped): the rows written before the
 * ALTER TABLE are read after it, when the table's definition is already the new one. Each event must carry the
 * columns and types of its own row image (its table map event), not those of the table when rowcast reads it.
 * Against the machine's MariaDB (binlog on, binlog_row_metadata = FULL: .ci/run turns it on).
 */

const skip = await mariadbUnavailable();

const database = `rowcast_t_${randomBytes(5).toString('hex')}`;
let admin: mysql.Connection;
let store: TestDatabase;
let runtime: RowcastRuntime | null = null;
let config: RowcastConfigInput;

async function start(): Promise<void> {
  const parsed = parseConfig(config, 'test config');
  runtime = await startRowcast({
    databaseUrl: store.url,
    runtime: FAST_RUNTIME,
    functions: parsed.functions,
    sources: parsed.sources,
    logger: createLogger('silent'),
  });
}

async function stop(): Promise<void> {
  await runtime?.stop();
  runtime = null;
}

async function afterImages(n: number): Promise<Record<string, unknown>[]> {
  return eventually(async () => {
    const { rows } = await store.pool.query<{ after: Record<string, unknown> }>(
      `SELECT after FROM rowcast.events WHERE capture = 'items' ORDER BY id`,
    );
    return rows.length >= n ? rows.map((r) => r.after) : null;
  }, `${n} events`);
}

before(async () => {
  if (skip) return;
  admin = await mysql.createConnection({ uri: MARIADB, database: 'mysql' });
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.query(`USE ${database}`);
  await admin.query(
    `CREATE TABLE items (id INT PRIMARY KEY, a INT, b INT, v INT, at DATETIME, note VARCHAR(10), amount DECIMAL(6,2))`,
  );
  store = await createTestDatabase();
  config = {
    sources: { maria: { kind: 'mysql', url: MARIADB, serverId: randomInt(100_000, 4_000_000) } },
    topics: { changes: {} },
    captures: { items: { source: 'maria', table: `${database}.items`, topic: 'changes', payload: 'row' } },
  };
  await applyConfig(store.pool, config);
});

after(async () => {
  await stop();
  await store?.drop();
  await admin?.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin?.end();
});

describe('MySQL source: DDL while rowcast does not read', { skip: skip ?? false }, () => {
  test('rows written before an ALTER TABLE and read after it keep the columns and types of their own table map', async () => {
    await start();
    await admin.query(`INSERT INTO items VALUES (1, 10, 20, 30, '2024-01-02 03:04:05', 'first', 1.50)`);
    await afterImages(1);
    await stop();

    await admin.query(`INSERT INTO items VALUES (2, 11, 21, 31, '2024-01-02 03:04:06', 'before', 2.50)`);
    // Reorder (b before a), change types (INT → BIGINT, DATETIME → TIMESTAMP, DECIMAL → VARCHAR), drop and add.
    await admin.query(
      `ALTER TABLE items MODIFY b INT AFTER id, MODIFY v BIGINT, MODIFY at TIMESTAMP NULL, MODIFY amount VARCHAR(10),
         DROP COLUMN note, ADD COLUMN extra VARCHAR(5) DEFAULT 'x' FIRST`,
    );
    await admin.query(
      `INSERT INTO items (id, a, b, v, at, amount, extra) VALUES (3, 12, 22, 9007199254740993, '2024-01-02 03:04:07', '3.50', 'y')`,
    );
    await start();
    const rows = await afterImages(3);
    assert.deepEqual(rows[0], { id: 1, a: 10, b: 20, v: 30, at: '2024-01-02T03:04:05', note: 'first', amount: '1.50' });
    assert.deepEqual(
      rows[1],
      { id: 2, a: 11, b: 21, v: 31, at: '2024-01-02T03:04:06', note: 'before', amount: '2.50' },
      'the row written before the ALTER: its own columns and types (INT a number, DATETIME without a zone, DECIMAL)',
    );
    const third = rows[2]!;
    assert.deepEqual(
      { ...third, at: undefined },
      { extra: 'y', id: 3, a: 12, b: 22, v: '9007199254740993', at: undefined, amount: '3.50' },
      'the row written after it: the new columns and types (BIGINT a string, VARCHAR)',
    );
    assert.match(String(third.at), /^2024-01-0[12]T\d\d:\d\d:07\+00:00$/, 'TIMESTAMP in UTC with its offset');
  });
});

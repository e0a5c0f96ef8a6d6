import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getDelivery, type RowcastConfigInput } from '../../src/index.js';
import { applyConfig, createTestDatabase, eventually, type TestDatabase } from '../support/database.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { patient } from '../support/patience.js';

let db: TestDatabase;
let config: { file: string; remove(): void };
let rowcast: RowcastProcess | undefined;

const input: RowcastConfigInput = {
  topics: { notes: {} },
  captures: { notes: { table: 'notes', topic: 'notes' } },
  subscriptions: { dev: { topic: 'notes', protocol: 'log', format: 'raw', options: { stream: 'stdout' } } },
  runtime: { pollInterval: '200ms', allowPrivateEndpoints: true },
};

before(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE notes (id int PRIMARY KEY, text text)`);
  await applyConfig(db.pool, input);
  config = writeConfigFile(input);
});

after(async () => {
  rowcast?.kill('SIGTERM');
  await rowcast?.exit(10_000).catch(() => {});
  config?.remove();
  await db?.drop();
});

test(
  "a log subscription prints one JSON line per message on the process's stdout",
  { timeout: patient(90_000) },
  async () => {
    rowcast = RowcastProcess.start(config.file, db.url);
    await rowcast.ready(db.pool);
    await db.pool.query(`INSERT INTO notes VALUES (1, 'hello log')`);
    const line = await eventually(
      () => rowcast!.output.split('\n').find((l) => l.includes('"subscription":"dev"')),
      'the log line',
      30_000,
    );
    const entry = JSON.parse(line) as {
      subscription: string;
      topic: string;
      id: string;
      attempt: number;
      message: { op: string; after: { text: string } };
    };
    assert.equal(entry.topic, 'notes');
    assert.equal(entry.attempt, 1);
    assert.equal(entry.message.op, 'INSERT');
    assert.equal(entry.message.after.text, 'hello log');
    // The topic's one message (in its log: a message row, or a segment's entry), and its delivery to dev as the admin
    // API reads it (a row, or its cursor).
    const { rows } = await db.pool.query(
      `SELECT id::text, seq::text FROM rowcast.log_messages('notes', 0, 9223372036854775807)`,
    );
    assert.equal(rows.length, 1);
    const delivery = await eventually(async () => {
      const d = await getDelivery(db.pool, `dev@${rows[0]!.seq}`);
      return d.state === 'done' && d;
    }, 'the delivery done');
    assert.equal(rows[0]!.id, entry.id);
    assert.equal(delivery.messageId, entry.id);
  },
);

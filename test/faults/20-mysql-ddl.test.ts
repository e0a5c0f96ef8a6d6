import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explained, reportResult, sleep, stopChild } from '../support/fault-harness.js';
import { admin, mysqlFaultTest, MysqlWriter } from '../support/mysql-faults.js';

const { skip, scenario, setUp } = await mysqlFaultTest();

/** Which of the table's shapes an event's row has: 0 (id, v int), 1 (+ note), 2 (+ note, v bigint: a string), 3 (id, v bigint). */
function shapeOf(after: Record<string, unknown>): number {
  const keys = Object.keys(after).sort().join(',');
  const big = typeof after.v === 'string';
  if (keys === 'id,v') return big ? 3 : 0;
  if (keys === 'id,note,v') return big ? 2 : 1;
  return -1;
}

test(
  'MySQL source: ADD COLUMN, MODIFY (INT to BIGINT) and DROP COLUMN on a captured table while writers commit: every event carries the columns and types of its moment, nothing lost',
  { skip, timeout: 420_000 },
  () =>
    explained(scenario.children, async () => {
      const { setup } = await setUp();
      const { db, database } = setup;
      const child = await scenario.spawn(db.pool, db.url);
      const writer = new MysqlWriter(database, false, 50);
      const c = await admin();
      try {
        for (const ddl of [
          `ALTER TABLE ${database}.items ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x'`,
          `ALTER TABLE ${database}.items MODIFY v BIGINT NOT NULL DEFAULT 0`,
          `ALTER TABLE ${database}.items DROP COLUMN note`,
        ]) {
          await sleep(1500);
          await c.query(ddl);
        }
      } finally {
        await c.end();
      }
      await sleep(1500);
      await writer.stop();
      const { items } = await setup.check('after the DDL');
      const { rows } = await db.pool.query<{ id: string; after: Record<string, unknown> }>(
        `SELECT id, after FROM rowcast.events WHERE capture = 'items' ORDER BY id`,
      );
      const shapes = rows.map((r) => shapeOf(r.after));
      const bad = rows
        .filter((_, i) => shapes[i] === -1 || (i > 0 && shapes[i]! < shapes[i - 1]!))
        .map((r) => JSON.stringify(r.after));
      assert.deepEqual(bad.slice(0, 5), [], 'each event has the shape of its moment, and shapes follow the DDL order');
      const counts = [0, 1, 2, 3].map((s) => shapes.filter((x) => x === s).length);
      assert.ok(
        counts.every((n) => n > 0),
        `events of every shape (${counts.join(', ')})`,
      );
      assert.equal(writer.failed, 0, `MariaDB writes do not fail here (${writer.lastError})`);
      assert.deepEqual(await stopChild(child), { code: 0, signal: null });
      reportResult('mysql-ddl', {
        writes: writer.attempted,
        committedVersions: items.committed,
        delivered: items.delivered,
        duplicates: items.duplicates,
        eventsPerShape: counts,
      });
    }),
);

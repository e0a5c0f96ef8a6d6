import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import {
  explained,
  FaultScenario,
  reportResult,
  sleep,
  stopChild,
  waitAllDelivered,
} from '../support/fault-harness.js';

const scenario = new FaultScenario();
const clients: pg.Client[] = [];

after(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await scenario.cleanup();
});

test('a lower event id commits after a higher one: both delivered', { timeout: 180_000 }, () =>
  explained(scenario.children, async () => {
    const { db, receiver, child } = await scenario.startOnTestDatabase();

    for (let i = 0; i < 2; i++) {
      const c = new pg.Client({ connectionString: db.url, application_name: 'rowcast test writer' });
      await c.connect();
      clients.push(c);
    }
    const [early, late] = clients as [pg.Client, pg.Client];
    const pairs = 3;
    const lateGapsMs: number[] = [];
    for (let p = 0; p < pairs; p++) {
      const low = 2 * p + 1;
      const high = 2 * p + 2;
      await early.query('BEGIN');
      await early.query('INSERT INTO items (id) VALUES ($1)', [low]); // takes the lower event id
      await late.query('BEGIN');
      await late.query('INSERT INTO items (id) VALUES ($1)', [high]);
      await late.query('COMMIT');
      await eventually(
        () => receiver.delivered.find((r) => r.json?.body?.after?.id === high),
        `row ${high} (higher event id) delivered`,
        15_000,
      );
      await sleep(1000); // several poll intervals and routing rounds pass while the lower id is still uncommitted
      const committedAt = Date.now();
      await early.query('COMMIT');
      const got = await eventually(
        () => receiver.delivered.find((r) => r.json?.body?.after?.id === low),
        `row ${low}, whose lower event id committed ${p + 1}. after the higher one, to be delivered`,
        15_000,
      );
      lateGapsMs.push(got.at - committedAt);
    }
    const ids = await waitAllDelivered(db.pool, receiver, 'every row delivered', 20_000);
    const result = assertDeliveries({ committed: ids, requests: receiver.requests });
    assert.equal(result.committed, 2 * pairs);
    assert.deepEqual(await stopChild(child), { code: 0, signal: null });
    reportResult('late-commit-lower-event-id', {
      pairs,
      committed: result.committed,
      delivered: result.delivered,
      duplicates: result.duplicates,
      lowerIdDeliveredAfterCommitMs: lateGapsMs,
    });
  }),
);

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { searchDeliveries } from '../../src/admin/inspect/delivery-search.js';
import { describeRun, REPO_ROOT, runNode } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { patient } from '../support/patience.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});

after(async () => {
  await db?.drop();
});

test(
  'npm run demo: the reference scenario delivers 4 signed notifications and exits 0',
  { timeout: patient(120_000) },
  async () => {
    const run = await runNode(path.join(REPO_ROOT, 'examples/demo/run.ts'), [], {
      env: { DATABASE_URL: db.url },
      timeoutMs: 90_000,
    });
    assert.equal(run.signal, null, `the demo did not finish within 90 s: ${describeRun(run)}`);
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, /notification 4\/4: signature verified/, describeRun(run));
    assert.equal(run.stdout.match(/signature verified/g)?.length, 4, describeRun(run));
    assert.ok(!run.stdout.includes('signature INVALID'), describeRun(run));
    for (let n = 1; n <= 4; n++) assert.match(run.stdout, new RegExp(`notification ${n}/4: signature verified`));
    assert.match(run.stdout, /all 4 notifications arrived, signatures verified, in \d+ ms/);
    assert.match(run.stdout, /apply: \+ function my_rds_triggered_topic_writer/);
    assert.match(run.stdout, /Notification for row-insert in RDS/);
    assert.match(
      run.stdout,
      /Printing Event record from RDS:/,
      'the ported handler ran and printed as the original does',
    );

    // The document's trigger queued one invocation per row through aws_lambda.invoke; each published once.
    const invocations = await db.pool.query(
      `SELECT state, source, cardinality(published) AS published FROM rowcast.invocations`,
    );
    assert.equal(invocations.rows.length, 4);
    assert.ok(
      invocations.rows.every((r) => r.state === 'done' && r.source === 'sql' && r.published === 1),
      JSON.stringify(invocations.rows),
    );
    // Read as the API reads it: rows, or what the subscription's cursor passed (the default).
    const delivered = await searchDeliveries(db.pool, { subscription: 'ops-team-webhook' });
    assert.deepEqual(
      delivered.items.map((d) => d.state),
      ['done', 'done', 'done', 'done'],
    );
    const trigger = await db.pool.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.customer_business_events'::regclass AND tgname = 'trigger_insert_event'`,
    );
    assert.equal(trigger.rowCount, 1, "the document's own trigger is installed");
  },
);

test(
  'npm run demo -- --python: the reference handler as written (boto3) delivers the same 4 notifications',
  { timeout: patient(120_000) },
  async (t) => {
    const missing = await promisify(execFile)('python3', ['-c', 'import boto3'], { timeout: 30_000 }).then(
      () => null,
      (err: Error) =>
        `python3 with boto3 is not available (${err.message.split('\n')[0]}); install Debian's python3-boto3`,
    );
    if (missing) return t.skip(missing);
    // A database of its own: the first test's rows and invocations are there.
    const own = await createTestDatabase();
    try {
      const run = await runNode(path.join(REPO_ROOT, 'examples/demo/run.ts'), ['--python'], {
        env: { DATABASE_URL: own.url },
        timeoutMs: 90_000,
      });
      assert.equal(run.signal, null, `the demo did not finish within 90 s: ${describeRun(run)}`);
      assert.equal(run.code, 0, describeRun(run));
      assert.equal(run.stdout.match(/notification \d\/4: signature verified/g)?.length, 4, describeRun(run));
      assert.match(run.stdout, /all 4 notifications arrived, signatures verified, in \d+ ms/);
      assert.match(
        run.stdout,
        /python \(invocation [0-9a-f-]{36}\): Printing Event record from RDS: \{'application'/,
        'the Python handler ran and printed (a Python dict)',
      );
      assert.match(run.stdout, /Response from SNS: \{'MessageId'/, "boto3's publish answered");
      const invocations = await own.pool.query(
        `SELECT state, source, cardinality(published) AS published FROM rowcast.invocations`,
      );
      assert.equal(invocations.rows.length, 4);
      assert.ok(
        invocations.rows.every((r) => r.state === 'done' && r.source === 'sql' && r.published === 1),
        JSON.stringify(invocations.rows),
      );
    } finally {
      await own.drop();
    }
  },
);

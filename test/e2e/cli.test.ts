import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateSecret, type RowcastConfigInput, type RowcastRuntime, createPool } from '../../src/index.js';
import { listMigrations } from '../../src/store/migrate.js';
import { allRowcastTriggers } from '../support/catalog.js';
import { createEmptyDatabase, describeRun, runCli } from '../support/cli.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { RowcastProcess } from '../support/rowcast-process.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/** A directory without any rowcast.config.*, as the child's working directory. */
let dir: string;
const databases: { drop(): Promise<void> }[] = [];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rowcast-cli-test-'));
});

after(async () => {
  for (const db of databases) await db.drop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

function writeConfig(name: string, config: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return file;
}

const count = async (db: TestDatabase, sql: string): Promise<number> => (await db.pool.query(sql)).rows[0].n;

describe('rowcast --help', () => {
  test('the program and every command print usage and exit 0', async () => {
    const commands = [
      'migrate',
      'apply',
      'start',
      'status',
      'redrive',
      'resume',
      'pause',
      'invoke',
      'invocations',
      'deliveries',
    ];
    const runs = await Promise.all([
      runCli(['--help'], { cwd: dir }),
      ...commands.map((c) => runCli([c, '--help'], { cwd: dir })),
    ]);
    const [program, ...perCommand] = runs;
    assert.equal(program!.code, 0, describeRun(program!));
    assert.match(program!.stdout, /^Usage: rowcast \[options\] \[command\]/);
    for (const c of commands) assert.match(program!.stdout, new RegExp(`^  ${c}\\b`, 'm'), `${c} is listed`);
    for (const [i, c] of commands.entries()) {
      const run = perCommand[i]!;
      assert.equal(run.code, 0, `${c} --help: ${describeRun(run)}`);
      assert.match(run.stdout, new RegExp(`^Usage: rowcast ${c} `), `${c} --help: ${describeRun(run)}`);
      assert.match(run.stdout, /-h, --help/);
    }
    assert.match(perCommand[1]!.stdout, /--dry-run/);
    assert.match(perCommand[4]!.stdout, /-s, --subscription <name>/);
    assert.match(perCommand[5]!.stdout, /Usage: rowcast resume \[options\] <subscription>/);
  });

  test('an unknown command fails and points to --help', async () => {
    const run = await runCli(['aply'], { cwd: dir });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /unknown command 'aply'/);
    assert.match(run.stderr, /--help/);
  });
});

describe('rowcast migrate', () => {
  test('two migrations at the same time both succeed and apply each migration once', async () => {
    const db = await createEmptyDatabase();
    databases.push(db);
    const env = { DATABASE_URL: db.url };
    const [a, b] = await Promise.all([runCli(['migrate'], { cwd: dir, env }), runCli(['migrate'], { cwd: dir, env })]);
    assert.equal(a.code, 0, describeRun(a));
    assert.equal(b.code, 0, describeRun(b));
    const outputs = [a.stdout, b.stdout].sort();
    const newest = listMigrations().at(-1)!.id;
    // One of them applied everything; the other waited for the lock and found nothing left to do.
    assert.match(
      outputs[0]!,
      new RegExp(
        `^applied ${listMigrations()
          .map((m) => m.name)
          .join(', ')}; schema rowcast is at version ${newest}\\n$`,
      ),
    );
    assert.equal(outputs[1], `schema rowcast is up to date (version ${newest})\n`);

    const pool = createPool(db.url, { max: 1 });
    try {
      const { rows } = await pool.query<{ id: number; n: number }>(
        'SELECT id, count(*)::int AS n FROM rowcast.schema_migrations GROUP BY id ORDER BY id',
      );
      assert.deepEqual(
        rows,
        listMigrations().map((m) => ({ id: m.id, n: 1 })),
      );
    } finally {
      await pool.end();
    }
    const again = await runCli(['migrate'], { cwd: dir, env });
    assert.equal(again.code, 0, describeRun(again));
    assert.match(again.stdout, /up to date/);
  });
});

describe('rowcast apply and status', () => {
  let db: TestDatabase;
  let configFile: string;
  const secret = generateSecret();
  const config: RowcastConfigInput = {
    topics: { orders: { description: 'order changes' } },
    captures: { orders: { table: 'public.orders', topic: 'orders', operations: ['INSERT', 'UPDATE'] } },
    subscriptions: {
      'orders-hook': { topic: 'orders', protocol: 'http', endpoint: 'http://127.0.0.1:9/hooks/orders', secret },
    },
  };

  before(async () => {
    db = await freshDatabase();
    await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY, status text)');
    configFile = writeConfig('apply.json', config);
  });

  test('apply --dry-run prints the SQL and changes nothing', async () => {
    const run = await runCli(['apply', '--dry-run', '--config', configFile], {
      cwd: dir,
      env: { DATABASE_URL: db.url },
    });
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, /^-- \+ topic orders$/m);
    assert.match(
      run.stdout,
      /CREATE TRIGGER "rowcast_orders_insert" AFTER INSERT ON "public"."orders" FOR EACH ROW EXECUTE FUNCTION rowcast."capture_orders"\(\);/,
    );
    assert.match(run.stdout, /CREATE TRIGGER "rowcast_orders_update" AFTER UPDATE ON "public"."orders"/);
    assert.ok(!run.stdout.includes(secret), 'the secret is not printed');
    assert.match(run.stdout, /<secret>/);
    assert.deepEqual(await allRowcastTriggers(db.pool), []);
    assert.equal(await count(db, 'SELECT count(*)::int AS n FROM rowcast.topics'), 0);
    assert.equal(await count(db, 'SELECT count(*)::int AS n FROM rowcast.subscriptions'), 0);
  });

  test('apply, then status and status --json show the topic, subscription and capture', async () => {
    const applied = await runCli(['apply', '--config', configFile], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(applied.code, 0, describeRun(applied));
    assert.match(applied.stdout, /^applied \d+ change\(s\)$/m);
    assert.match(applied.stderr, /\[1\/\d+\] \+ topic orders/);
    assert.deepEqual(await allRowcastTriggers(db.pool), [
      'public.orders:rowcast_orders_insert',
      'public.orders:rowcast_orders_update',
    ]);

    const again = await runCli(['apply', '--config', configFile], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(again.stdout, 'nothing to change: the database matches the config\n');

    // status needs no config file: the database knows.
    const status = await runCli(['status'], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(status.code, 0, describeRun(status));
    assert.match(status.stdout, /orders-hook/);
    assert.match(status.stdout, /\borders\b/);

    const json = await runCli(['status', '--json'], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(json.code, 0, describeRun(json));
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(parsed.topics, [
      { name: 'orders', owner: 'config', subscriptions: 1, pending: 0, inFlight: 0, dead: 0, unmatched: 0 },
    ]);
    assert.deepEqual(parsed.captures, [{ name: 'orders', table: 'public.orders', topic: 'orders', mode: 'row' }]);
    assert.equal(parsed.logicalCapture, null);
    assert.equal(parsed.subscriptions.length, 1);
    assert.deepEqual(
      (({ name, topic, protocol, endpoint, state }) => ({ name, topic, protocol, endpoint, state }))(
        parsed.subscriptions[0],
      ),
      {
        name: 'orders-hook',
        topic: 'orders',
        protocol: 'http',
        endpoint: 'http://127.0.0.1:9/hooks/orders',
        state: 'active',
      },
    );
    assert.equal(parsed.secrets, undefined, 'secrets only with --secrets');
  });

  test('pause and resume a subscription', async () => {
    const env = { DATABASE_URL: db.url };
    const paused = await runCli(['pause', 'orders-hook'], { cwd: dir, env });
    assert.equal(paused.code, 0, describeRun(paused));
    assert.equal(paused.stdout, 'subscription orders-hook is paused\n');
    assert.equal(
      (await db.pool.query(`SELECT state FROM rowcast.subscriptions WHERE name = 'orders-hook'`)).rows[0].state,
      'paused',
    );
    const resumed = await runCli(['resume', 'orders-hook'], { cwd: dir, env });
    assert.equal(resumed.stdout, 'subscription orders-hook is active\n', describeRun(resumed));
    const missing = await runCli(['pause', 'nope'], { cwd: dir, env });
    assert.equal(missing.code, 1, describeRun(missing));
    assert.match(missing.stderr, /No subscription "nope"; known: orders-hook/);
  });

  test('an invalid config file: exit code 2, the problem and its key path on stderr, nothing applied', async () => {
    const bad = writeConfig('bad.json', {
      ...config,
      captures: {
        orders: { table: 'orders', topic: 'orders', payload: 'everything' },
        extra: { table: 'orders', topic: 'nope' },
      },
    });
    const before = await allRowcastTriggers(db.pool);
    const run = await runCli(['apply', '--config', bad], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(run.code, 2, describeRun(run));
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^rowcast: bad\.json is invalid:/);
    assert.match(run.stderr, /^ {2}- captures\.orders\.payload: expected one of "keys"\|"row"\|"diff"\.$/m);
    assert.deepEqual(await allRowcastTriggers(db.pool), before);

    const broken = writeConfig('broken.json', '{ "topics": { ');
    const syntax = await runCli(['apply', '--config', broken], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(syntax.code, 2, describeRun(syntax));
    assert.match(syntax.stderr, /broken\.json is not valid JSON/);

    const absent = await runCli(['apply', '--config', path.join(dir, 'absent.json')], {
      cwd: dir,
      env: { DATABASE_URL: db.url },
    });
    assert.equal(absent.code, 2, describeRun(absent));
    assert.match(absent.stderr, /absent\.json does not exist; check the --config path/);

    const none = await runCli(['apply'], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(none.code, 2, describeRun(none));
    assert.match(none.stderr, /No config file in .*: create one of rowcast\.config\.ts, .*or pass --config <file>/);
  });
});

describe('rowcast redrive', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  let rowcast: RowcastRuntime | undefined;

  before(async () => {
    db = await freshDatabase();
    receiver = await WebhookReceiver.start();
    receiver.reply = () => ({ status: 500 });
    await db.pool.query('CREATE TABLE orders (id int PRIMARY KEY)');
    const policy = { maxAttempts: 1, minDelay: '50ms', maxDelay: '50ms' };
    await applyConfig(db.pool, {
      topics: { orders: {} },
      captures: { orders: { table: 'orders', topic: 'orders', operations: ['INSERT'] } },
      subscriptions: {
        'hook-a': { topic: 'orders', protocol: 'http', endpoint: receiver.url, deliveryPolicy: policy },
        'hook-b': { topic: 'orders', protocol: 'http', endpoint: receiver.url, deliveryPolicy: policy },
      },
    });
    rowcast = await startTestRowcast(db.url);
  });

  after(async () => {
    await rowcast?.stop();
    await receiver?.close();
  });

  const states = async () =>
    (
      await db.pool.query<{ s: string }>(
        `SELECT subscription || ':' || state AS s FROM rowcast.deliveries ORDER BY subscription`,
      )
    ).rows.map((r) => r.s);

  test('an unknown subscription is refused by name', async () => {
    const run = await runCli(['redrive', '--subscription', 'nope'], { cwd: dir, env: { DATABASE_URL: db.url } });
    assert.equal(run.code, 1, describeRun(run));
    assert.match(run.stderr, /^rowcast: No subscription "nope"; known: hook-a, hook-b\.$/m);
    assert.equal(run.stdout, '');
  });

  test('dead deliveries are re-queued (one subscription, then all) and then delivered', async () => {
    await db.pool.query('INSERT INTO orders VALUES (1)');
    await eventually(
      async () => (await states()).join() === 'hook-a:dead,hook-b:dead',
      'both deliveries dead after their single attempt',
    );
    const env = { DATABASE_URL: db.url };
    const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir, env })).stdout);
    assert.deepEqual(status.topics, [
      { name: 'orders', owner: 'config', subscriptions: 2, pending: 0, inFlight: 0, dead: 2, unmatched: 0 },
    ]);
    assert.match(status.subscriptions[0].lastError, /500/);

    receiver.reply = () => ({ status: 204 });
    const one = await runCli(['redrive', '-s', 'hook-a'], { cwd: dir, env });
    assert.equal(one.code, 0, describeRun(one));
    assert.equal(one.stdout, 're-queued 1 dead delivery\n');
    await eventually(
      async () => (await states()).join() === 'hook-a:done,hook-b:dead',
      'hook-a delivered, hook-b still dead',
    );
    assert.equal(receiver.delivered.filter((r) => r.headers['rowcast-subscription'] === 'hook-a').length, 1);

    const all = await runCli(['redrive'], { cwd: dir, env });
    assert.equal(all.code, 0, describeRun(all));
    assert.equal(all.stdout, 're-queued 1 dead delivery\n');
    await eventually(async () => (await states()).join() === 'hook-a:done,hook-b:done', 'both delivered');
    assert.equal(receiver.delivered.length, 2);

    const nothing = await runCli(['redrive'], { cwd: dir, env });
    assert.equal(nothing.stdout, 're-queued 0 dead deliveries\n', describeRun(nothing));
  });
});

describe('rowcast invoke and invocations', () => {
  test('invoke queues an invocation; invocations lists it; bad input is refused clearly', async () => {
    const db = await freshDatabase();
    const config = writeConfig('functions.json', {
      topics: { out: {} },
      functions: { echo: { handler: path.resolve('test/fixtures/handlers/callback-style.ts') } },
    });
    const env = { DATABASE_URL: db.url };
    const applied = await runCli(['--config', config, 'apply'], { cwd: dir, env });
    assert.equal(applied.code, 0, describeRun(applied));
    const invoked = await runCli(['invoke', 'echo', '--payload', '{"n": 4}'], { cwd: dir, env });
    assert.equal(invoked.code, 0, describeRun(invoked));
    const id = /queued invocation ([0-9a-f-]{36}) of echo/.exec(invoked.stdout)?.[1];
    assert.ok(id, invoked.stdout);

    const listed = await runCli(['invocations', '--function', 'echo', '--json'], { cwd: dir, env });
    assert.equal(listed.code, 0, describeRun(listed));
    const rows = JSON.parse(listed.stdout) as { id: string; state: string; source: string }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.state, r.source]),
      [[id, 'pending', 'api']],
    );
    const table = await runCli(['invocations'], { cwd: dir, env });
    assert.match(table.stdout, /INVOCATION\s+FUNCTION\s+SOURCE\s+STATE/);
    assert.match(table.stdout, new RegExp(`${id}\\s+echo\\s+api\\s+pending`));

    const unknown = await runCli(['invoke', 'nope'], { cwd: dir, env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /function "nope" does not exist.*known: echo/s);
    const badJson = await runCli(['invoke', 'echo', '--payload', '{nope'], { cwd: dir, env });
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /--payload is not JSON/);
    assert.equal(await count(db, `SELECT count(*)::int AS n FROM rowcast.invocations`), 1, 'nothing else was queued');
  });
});

describe('no database configured', () => {
  test('without DATABASE_URL and without a config file, commands say how to name the database', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'rowcast-cli-empty-'));
    try {
      const env = { DATABASE_URL: undefined };
      for (const args of [['migrate'], ['status'], ['redrive']]) {
        const run = await runCli(args, { cwd: empty, env });
        assert.equal(run.code, 1, `${args.join(' ')}: ${describeRun(run)}`);
        assert.match(
          run.stderr,
          /^rowcast: No database: set DATABASE_URL \(e\.g\. postgres:\/\/.*\), pass --database-url, or set database\.url in the config\.$/m,
          args.join(' '),
        );
        assert.equal(run.stdout, '');
      }
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('a database that does not exist is reported as a connection problem', async () => {
    const url = new URL(process.env.ROWCAST_TEST_ADMIN_URL!);
    url.pathname = '/rowcast_no_such_database';
    const run = await runCli(['status'], { cwd: dir, env: { DATABASE_URL: url.toString() } });
    assert.equal(run.code, 1, describeRun(run));
    assert.match(run.stderr, /cannot connect to the database .*check DATABASE_URL/);
  });
});

describe('startup problems: one line that names the fix, never a stack trace', () => {
  /** Every command that talks to the database, with arguments that would otherwise be valid. */
  const commands = [
    ['migrate'],
    ['apply'],
    ['start'],
    ['status'],
    ['redrive'],
    ['replay', 'cap', '-s', 'hook', '--since', '1h'],
    ['resume', 'hook'],
    ['pause', 'hook'],
    ['rotate-secret', 'hook'],
    ['invoke', 'fn'],
    ['invocations'],
    ['deliveries', '--row-key', 'id=1'],
  ];
  const oneFriendlyLine = (run: Awaited<ReturnType<typeof runCli>>, args: string[], message: RegExp) => {
    const what = `${args.join(' ')}: ${describeRun(run)}`;
    assert.notEqual(run.code, 0, what);
    assert.ok(run.code !== null, what);
    assert.doesNotMatch(run.stdout + run.stderr, /^\s+at /m, `no stack trace; ${what}`);
    assert.doesNotMatch(run.stdout + run.stderr, /rowcast started/, what);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line on stderr; ${what}`);
    assert.match(lines[0]!, message, what);
  };

  test('a role that does not exist: every command', async () => {
    const db = await freshDatabase();
    const config = writeConfig('startup-problems.json', { topics: { t: {} } });
    const url = new URL(db.url);
    url.username = 'nobody';
    const runs = await Promise.all(
      commands.map((args) =>
        runCli(['--config', config, ...args], {
          cwd: dir,
          env: { DATABASE_URL: url.toString(), ROWCAST_LOG_LEVEL: 'info' },
        }),
      ),
    );
    // Without a password the server answers "role does not exist" (trust) or "password authentication failed".
    const message =
      /^rowcast: cannot connect to the database \((role "nobody" does not exist|password authentication failed for user "nobody")\); check the user name and password in DATABASE_URL/;
    const failures = runs.flatMap((run, i) => {
      try {
        oneFriendlyLine(run, commands[i]!, message);
        return [];
      } catch (err) {
        return [(err as Error).message];
      }
    });
    assert.deepEqual(failures, []);
  });

  test('a malformed DATABASE_URL is called malformed: every command', async () => {
    const config = writeConfig('startup-problems.json', { topics: { t: {} } });
    const runs = await Promise.all(
      commands.map((args) =>
        runCli(['--config', config, ...args], {
          cwd: dir,
          env: { DATABASE_URL: 'not a url', ROWCAST_LOG_LEVEL: 'info' },
        }),
      ),
    );
    const failures = runs.flatMap((run, i) => {
      try {
        oneFriendlyLine(
          run,
          commands[i]!,
          /^rowcast: The database URL is malformed: .*postgres:\/\/user:password@host:5432\/database/,
        );
        assert.doesNotMatch(
          run.stderr,
          /ENOTFOUND|not a url/,
          'neither a DNS error nor the value itself (it may hold a password)',
        );
        return [];
      } catch (err) {
        return [(err as Error).message];
      }
    });
    assert.deepEqual(failures, []);
  });

  test('start on a port already in use: says so and which key to change, and never that it started', async () => {
    const db = await freshDatabase();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const config = writeConfig('port-taken.json', { runtime: { http: { port, host: '127.0.0.1' } } });
      const run = await runCli(['--config', config, 'start'], {
        cwd: dir,
        env: { DATABASE_URL: db.url, ROWCAST_LOG_LEVEL: 'info' },
      });
      oneFriendlyLine(
        run,
        ['start'],
        new RegExp(
          `^rowcast: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use \\(another rowcast on that port\\?\\); pick another runtime\\.http\\.port`,
        ),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('rowcast start says which config it runs on', () => {
  async function startedOutput(args: string[], cwd: string, db: TestDatabase): Promise<string> {
    const child = RowcastProcess.run(args, { DATABASE_URL: db.url, ROWCAST_LOG_LEVEL: 'info' }, cwd);
    try {
      await child.ready(db.pool);
    } finally {
      child.kill('SIGTERM');
      await child.exit(30_000).catch(() => child.kill('SIGKILL'));
    }
    return child.output;
  }

  test('the file it loaded, or that none was found and what that means', async () => {
    const db = await freshDatabase();
    const empty = mkdtempSync(path.join(tmpdir(), 'rowcast-cli-noconfig-'));
    try {
      const none = await startedOutput(['start'], empty, db);
      const warning = none
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((l) => /no config file/i.test(l.msg));
      assert.ok(warning, none);
      assert.equal(warning.level, 40, 'a warning');
      assert.equal(warning.directory, empty);
      assert.match(
        warning.msg,
        /running on defaults: no functions, no HTTP server; pass --config <file> or create rowcast\.config\.\{ts,/,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }

    const file = writeConfig('start-config.json', { runtime: { concurrency: 8 } });
    const loaded = await startedOutput(['--config', file, 'start'], dir, db);
    const line = loaded
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'config loaded');
    assert.ok(line, loaded);
    assert.equal(line.file, file);
  });
});

describe('rowcast apply warns about what is known to fail', () => {
  test('private and loopback endpoints, https with an http:// URL, numeric filters on string-valued columns', async () => {
    const db = await freshDatabase();
    await db.pool.query('CREATE TABLE payments (id bigint PRIMARY KEY, total numeric(12,2), status text, n int)');
    const body = 'MessageBody' as const;
    const file = writeConfig('warnings.json', {
      topics: { payments: {} },
      captures: { payments: { table: 'payments', topic: 'payments' } },
      subscriptions: {
        local: { topic: 'payments', protocol: 'http', endpoint: 'http://127.0.0.1:9/hook' },
        metadata: { topic: 'payments', protocol: 'http', endpoint: 'http://169.254.169.254/latest' },
        internal: { topic: 'payments', protocol: 'http', endpoint: 'http://[fd00::1]:8080/hook' },
        plain: { topic: 'payments', protocol: 'https', endpoint: 'http://example.com/hook' },
        big: {
          topic: 'payments',
          protocol: 'https',
          endpoint: 'https://example.com/big',
          filterPolicyScope: body,
          filterPolicy: { after: { total: [{ numeric: ['>', 100] }] } },
        },
        ids: {
          topic: 'payments',
          protocol: 'https',
          endpoint: 'https://example.com/ids',
          filterPolicyScope: body,
          filterPolicy: { $or: [{ before: { id: [5] } }, { after: { status: ['paid'] } }] },
        },
        // No warning: a number on an int column, strings on text, and the same numbers as message attributes.
        fine: {
          topic: 'payments',
          protocol: 'https',
          endpoint: 'https://example.com/fine',
          filterPolicyScope: body,
          filterPolicy: { after: { n: [{ numeric: ['>', 1] }], status: ['paid'] } },
        },
      },
    });
    const env = { DATABASE_URL: db.url };
    for (const args of [['apply', '--dry-run'], ['apply']]) {
      const run = await runCli([...args, '--config', file], { cwd: dir, env });
      const what = `${args.join(' ')}: ${describeRun(run)}`;
      assert.equal(run.code, 0, what);
      const warnings = run.stderr.split('\n').filter((l) => l.startsWith('warning: '));
      const about = (sub: string) => warnings.filter((w) => w.startsWith(`warning: subscriptions.${sub}`));
      assert.match(
        about('local').join('\n'),
        /127\.0\.0\.1 is a loopback address: deliveries to it are refused .*runtime\.allowPrivateEndpoints: true/,
        what,
      );
      assert.match(about('metadata').join('\n'), /169\.254\.169\.254 is a link-local \(cloud metadata\) address/, what);
      assert.match(about('internal').join('\n'), /fd00::1 is a unique local/, what);
      assert.match(
        about('plain').join('\n'),
        /protocol is https but the endpoint is an http:\/\/ URL.*https:\/\//,
        what,
      );
      assert.match(
        about('big').join('\n'),
        /filterPolicy: after\.total is numeric\(12,2\) in public\.payments, sent as a JSON string.*never match.*\["100\.00"\].*when/,
        what,
      );
      assert.match(about('ids').join('\n'), /filterPolicy: before\.id is bigint in public\.payments/, what);
      assert.deepEqual(about('fine'), [], what);
      assert.equal(warnings.length, 6, what);
    }
  });
});

describe("rowcast apply: progress and the dry run's summary", () => {
  test('each change is reported once, numbered over the changes; --dry-run ends with what would change', async () => {
    const db = await freshDatabase();
    await db.pool.query('CREATE TABLE parcels (id int PRIMARY KEY, status text)');
    const file = writeConfig('progress.json', {
      topics: { parcels: {} },
      captures: { parcels: { table: 'parcels', topic: 'parcels' } },
      subscriptions: { courier: { topic: 'parcels', protocol: 'https', endpoint: 'https://example.com/parcels' } },
    });
    const env = { DATABASE_URL: db.url };
    const dry = await runCli(['apply', '--dry-run', '--config', file], { cwd: dir, env });
    assert.equal(dry.code, 0, describeRun(dry));
    const summary = dry.stdout.trimEnd().split('\n').slice(-4);
    assert.deepEqual(
      summary,
      [
        '-- would apply 3 changes (nothing was changed; run apply without --dry-run to apply them):',
        '--   + topic parcels',
        '--   + subscription courier (https https://example.com/parcels) on topic parcels',
        '--   + capture parcels on public.parcels (INSERT, UPDATE, DELETE → topic parcels, payload row)',
      ],
      describeRun(dry),
    );

    const run = await runCli(['apply', '--config', file], { cwd: dir, env });
    assert.equal(run.code, 0, describeRun(run));
    const progress = run.stderr.split('\n').filter((l) => /^\[\d+\/\d+\]/.test(l));
    assert.deepEqual(
      progress,
      [
        '[1/3] + topic parcels',
        '[2/3] + subscription courier (https https://example.com/parcels) on topic parcels',
        '[3/3] + capture parcels on public.parcels (INSERT, UPDATE, DELETE → topic parcels, payload row)',
      ],
      describeRun(run),
    );
    assert.match(run.stdout, /^applied 3 change\(s\)$/m);

    const again = await runCli(['apply', '--dry-run', '--config', file], { cwd: dir, env });
    assert.match(again.stdout, /^-- nothing to change: the database matches the config$/m);
  });
});

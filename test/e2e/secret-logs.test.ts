/**
 * Secrets never appear in rowcast's output. rowcast runs at debug level with every kind of secret configured —
 * webhook signing secrets (inline and from the environment), header values (Authorization, an API key from the
 * environment), a password and an API key in webhook URLs, the DATABASE_URL password, SMTP and broker passwords,
 * the HTTP server's token — and meets failures: an endpoint that is down, one that answers 500, an SMTP server and a
 * RabbitMQ that refuse the password, an unreachable database, an invalid config, requests with a wrong token.
 * Everything it wrote (the CLI's `apply`, `apply --dry-run`, `status` and `start` as child processes, the library
 * with a pino logger writing into a buffer, and the delivery errors kept in the database for status and the admin
 * API) is searched for every secret value.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { generateSecret, getDelivery, type RowcastConfigInput, startRowcast } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { describeRun, runCli } from '../support/cli.js';
import { createTestDatabase, eventually, type TestDatabase } from '../support/database.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const token = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;

let db: TestDatabase;
let failing: WebhookReceiver;
let smtp: SMTPServer;
let smtpPort: number;
let closedPort: number;
let config: { file: string; remove(): void };
let databaseUrl: string;
const secrets: Record<string, string> = {};
/** Everything rowcast printed or stored for people to read, by where it came from. */
const outputs: Record<string, string> = {};

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  db = await createTestDatabase();
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  failing = await WebhookReceiver.start();
  failing.reply = () => ({ status: 500, body: 'internal error' });
  closedPort = await freePort();
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disableReverseLookup: true,
    logger: false,
    onAuth(_auth, _session, callback) {
      callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as { port: number }).port;

  // The database password: the real one if the test server has one (embedded PostgreSQL), else one the server
  // ignores (trust authentication) but rowcast still holds in its URL.
  const url = new URL(db.url);
  if (!url.password) url.password = token('dbpw');
  databaseUrl = url.toString();
  Object.assign(secrets, {
    'database password': decodeURIComponent(url.password),
    'webhook secret (inline)': generateSecret(),
    'webhook secret (env)': generateSecret(),
    'Authorization header': `Bearer ${token('bearer')}`,
    'API key header (env)': token('apikey'),
    'password in a webhook URL': token('urlpw'),
    'API key in a webhook URL query': token('querykey'),
    'SMTP password': token('smtppw'),
    'RabbitMQ password': token('amqppw'),
    'Redis password': token('redispw'),
    'NATS password': token('natspw'),
    'MQTT password': token('mqttpw'),
    'HTTP token': token('httptoken'),
  });
  config = writeConfigFile(rowcastConfig());
});

after(async () => {
  config?.remove();
  await failing?.close();
  if (smtp) await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await db?.drop();
});

/** The environment of the CLI: secrets that the config reads from variables. */
const env = () => ({
  DATABASE_URL: databaseUrl,
  ROWCAST_LOG_LEVEL: 'debug',
  ROWCAST_TEST_WEBHOOK_SECRET: secrets['webhook secret (env)']!,
  ROWCAST_TEST_API_KEY: secrets['API key header (env)']!,
});

function rowcastConfig(): RowcastConfigInput {
  // Retries come fast; an attempt may take long: on a loaded machine a broker's login refusal took over 2 s, and
  // the test needs the refusal itself (its text is checked for the password), not a timeout.
  const fast = { minDelay: 200, maxDelay: 500, timeout: 15_000 };
  return {
    topics: { t: {} },
    captures: { items: { table: 'items', topic: 't' } },
    subscriptions: {
      down: {
        topic: 't',
        protocol: 'http',
        endpoint: `http://rowcast:${secrets['password in a webhook URL']}@127.0.0.1:${closedPort}/hook`,
        secret: secrets['webhook secret (inline)'],
        headers: { authorization: secrets['Authorization header']!, 'x-api-key': '${ROWCAST_TEST_API_KEY}' },
        deliveryPolicy: fast,
      },
      failing: {
        topic: 't',
        protocol: 'http',
        endpoint: `${failing.url}?api_key=${secrets['API key in a webhook URL query']}&page=1`,
        secret: { env: 'ROWCAST_TEST_WEBHOOK_SECRET' },
        headers: { authorization: secrets['Authorization header']! },
        deliveryPolicy: fast,
      },
      mail: {
        topic: 't',
        protocol: 'email',
        options: {
          to: 'ops@example.com',
          from: 'rowcast@example.com',
          smtp: { host: '127.0.0.1', port: smtpPort, auth: { user: 'rowcast', pass: secrets['SMTP password']! } },
        },
        deliveryPolicy: fast,
      },
      rabbit: {
        topic: 't',
        protocol: 'amqp',
        options: {
          url: `amqp://guest:${secrets['RabbitMQ password']}@127.0.0.1:5672`,
          exchange: '',
          routingKey: 'rowcast-secret-logs',
        },
        deliveryPolicy: fast,
      },
      redis: {
        topic: 't',
        protocol: 'redis',
        options: {
          url: `redis://default:${secrets['Redis password']}@127.0.0.1:6379`,
          stream: `rowcast-secret-logs-${randomBytes(4).toString('hex')}`,
          maxLen: 100,
        },
        deliveryPolicy: fast,
      },
      nats: {
        topic: 't',
        protocol: 'nats',
        options: {
          subject: 'rowcast.secretlogs.{topic}',
          credentials: { user: 'rowcast', password: secrets['NATS password']! },
        },
        deliveryPolicy: fast,
      },
      mqtt: {
        topic: 't',
        protocol: 'mqtt',
        options: { topic: 'rowcast/secret-logs', username: 'rowcast', password: secrets['MQTT password']! },
        deliveryPolicy: fast,
      },
    },
    runtime: runtime(),
  };
}

function runtime() {
  return {
    logLevel: 'debug' as const,
    pollInterval: 200,
    lease: 3000,
    shutdownGrace: 2000,
    allowPrivateEndpoints: true,
    http: { port: 0, host: '127.0.0.1', token: secrets['HTTP token']! },
  };
}

/**
 * Attempts so far (failed or done), per subscription: each message's delivery as the admin API reads it, a row or
 * (delivered at its first attempt through a cursor, with no row) its cursor's. The messages are each topic's log:
 * its message rows, and its segments' entries where routing wrote segments (migration 042).
 */
async function attempts(): Promise<Map<string, number>> {
  const { rows } = await db.pool.query<{ subscription: string; seq: string }>(
    `SELECT s.name AS subscription, m.seq::text
       FROM rowcast.subscriptions s, rowcast.log_messages(s.topic, 0, 9223372036854775807) m`,
  );
  const n = new Map<string, number>();
  for (const r of rows) {
    const d = await getDelivery(db.pool, `${r.subscription}@${r.seq}`);
    n.set(r.subscription, (n.get(r.subscription) ?? 0) + d.attempts);
  }
  return n;
}

/** Waits until every one of the 7 subscriptions has had at least two more attempts than in `since`. */
async function twoMoreAttemptsEach(since: Map<string, number>, what: string): Promise<void> {
  await eventually(
    async () => {
      const now = await attempts();
      return now.size === 7 && [...now].every(([sub, n]) => n >= (since.get(sub) ?? 0) + 2);
    },
    what,
    60_000,
  );
}

describe('secrets never appear in output', () => {
  test('rowcast apply, apply --dry-run, and an invalid config', async () => {
    const dry = await runCli(['apply', '--dry-run', '--config', config.file], { env: env() });
    assert.equal(dry.code, 0, describeRun(dry));
    outputs['apply --dry-run'] = dry.stdout + dry.stderr;
    const applied = await runCli(['apply', '--config', config.file], { env: env() });
    assert.equal(applied.code, 0, describeRun(applied));
    outputs.apply = applied.stdout + applied.stderr;

    // Invalid values next to (and in) secrets: each is named, none is echoed.
    const bad = rowcastConfig() as any;
    bad.subscriptions.down.secret = `whsec_${secrets['password in a webhook URL']}`;
    bad.subscriptions.mail.options.smtp.auth.pass = 42;
    bad.subscriptions.rabbit.options.url = `amqp://guest:${secrets['RabbitMQ password']}@127.0.0.1:5672 with spaces`;
    bad.runtime.http.token = { env: 'not a variable name' };
    bad.runtime.pollInterval = 'often';
    const badFile = path.join(path.dirname(config.file), 'invalid.config.json');
    writeFileSync(badFile, JSON.stringify(bad));
    try {
      const invalid = await runCli(['apply', '--config', badFile], { env: env() });
      assert.equal(invalid.code, 2, describeRun(invalid));
      for (const where of [
        'subscriptions.down.secret',
        'subscriptions.mail.options.smtp.auth.pass',
        'subscriptions.rabbit.options.url',
        'runtime.http.token.env',
        'runtime.pollInterval',
      ]) {
        assert.ok(invalid.stderr.includes(`${where}: `), `${where} is named:\n${invalid.stderr}`);
      }
      outputs['apply (invalid config)'] = invalid.stdout + invalid.stderr;
    } finally {
      rmSync(badFile, { force: true });
    }

    // An unreachable database: the error names the problem, not the URL's password.
    const unreachable = new URL(databaseUrl);
    unreachable.port = String(closedPort);
    const down = await runCli(['apply', '--config', config.file], {
      env: { ...env(), DATABASE_URL: unreachable.toString() },
    });
    assert.equal(down.code, 1, describeRun(down));
    assert.match(down.stderr, /cannot connect to the database/);
    outputs['apply (database down)'] = down.stdout + down.stderr;
  });

  test('rowcast start at debug level, with failing deliveries and requests to its HTTP server', async () => {
    const child = RowcastProcess.start(config.file, databaseUrl, { env: env() });
    try {
      await child.ready(db.pool);
      await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3) g`);
      await twoMoreAttemptsEach(new Map(), 'two attempts per subscription');
      const listening = await eventually(
        () => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(child.output)?.[1],
        'the HTTP server address in the log',
      );
      for (const auth of [undefined, 'Bearer wrong', `Bearer ${secrets['HTTP token']}`]) {
        for (const route of ['/readyz', '/topics/t/stream', '/api/overview', '/api/subscriptions', '/metrics']) {
          const res = await fetch(`${listening}${route}`, {
            headers: auth ? { authorization: auth } : {},
            signal: AbortSignal.timeout(5000),
          });
          if (route === '/topics/t/stream') await res.body?.cancel();
          else
            outputs[`GET ${route} (${auth ? (auth === 'Bearer wrong' ? 'wrong token' : 'token') : 'no token'})`] =
              await res.text();
        }
      }
      const status = await runCli(['status', '--config', config.file], { env: env() });
      assert.equal(status.code, 0, describeRun(status));
      const json = await runCli(['status', '--json', '--config', config.file], { env: env() });
      outputs['status'] = status.stdout + status.stderr + json.stdout + json.stderr;
    } finally {
      child.kill('SIGTERM');
      await child.exit(30_000).catch(() => child.kill('SIGKILL'));
      outputs['rowcast start'] = child.output;
    }
    assert.match(outputs['rowcast start']!, /delivery attempt failed/);
  });

  test('the library with a pino logger writing into a buffer', async () => {
    let logged = '';
    const buffer = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logged += chunk.toString('utf8');
        callback();
      },
    });
    const saved = { ...process.env };
    Object.assign(process.env, env());
    try {
      const rowcast = await startRowcast({ databaseUrl, runtime: runtime(), logger: createLogger('debug', buffer) });
      try {
        const since = await attempts();
        await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(4, 6) g`);
        await twoMoreAttemptsEach(since, 'more attempts per subscription');
      } finally {
        await rowcast.stop();
      }
    } finally {
      for (const k of Object.keys(env())) if (saved[k] === undefined) delete process.env[k];
      Object.assign(process.env, saved);
    }
    outputs['library logger'] = logged;
    assert.match(logged, /delivery attempt failed/);
  });

  test('the delivery errors kept for status and the admin API', async () => {
    const { rows } = await db.pool.query<{ subscription: string; last_error: string | null }>(
      'SELECT subscription, last_error FROM rowcast.deliveries ORDER BY 1',
    );
    outputs['deliveries.last_error'] = rows.map((r) => `${r.subscription}: ${r.last_error}`).join('\n');
    // The failures were real ones: the endpoint down, a 500, the SMTP and RabbitMQ logins refused.
    const errorOf = (sub: string) => rows.find((r) => r.subscription === sub)?.last_error ?? '';
    assert.match(errorOf('down'), /ECONNREFUSED/);
    assert.match(errorOf('failing'), /HTTP 500/);
    assert.match(errorOf('mail'), /535|[Aa]uthentication/);
    assert.match(errorOf('rabbit'), /ACCESS.REFUSED|403/);
  });

  test('no secret value appears anywhere', () => {
    assert.ok(Object.keys(outputs).length >= 8, Object.keys(outputs).join(', '));
    const leaks: string[] = [];
    for (const [name, value] of Object.entries(secrets)) {
      // Also the forms a secret takes elsewhere: a whsec_ secret's key part, a password percent-encoded in a URL.
      const forms = new Set([
        value,
        value.replace(/^whsec_/, ''),
        encodeURIComponent(value),
        value.replace(/^Bearer /, ''),
      ]);
      for (const [where, text] of Object.entries(outputs)) {
        for (const form of forms)
          if (text.includes(form))
            leaks.push(
              `${name} in ${where}: …${text.slice(Math.max(0, text.indexOf(form) - 200), text.indexOf(form) + form.length + 50)}…`,
            );
      }
    }
    assert.deepEqual(leaks, []);
  });
});

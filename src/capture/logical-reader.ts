import type { LogicalReplicationService, Pgoutput } from 'pg-logical-replication';
import type { Operation } from '../config/capture-schema.js';
import type { DatabaseSettings } from '../config/database-schema.js';
import type { Logger } from '../observability/logger.js';
import { connectionSettings, createPool, type Pool, withoutDeadline } from '../store/pool.js';
import { PUBLICATION, slotName } from './logical-ddl.js';
import { type Change, type OpenTransaction, stageChanges, writeChanges } from './logical-writes.js';
import {
  CHUNK_BYTES,
  CHUNK_ROWS,
  BACKFILL_PREFIX,
  decodesMessages,
  keepSlotAlive,
  lsnText,
  lsnValue,
  replicationService,
  textPlugin,
  writtenBefore,
} from './pgoutput.js';
import { SlotConfirmations } from './slot-confirmations.js';
import { WAKE } from './wake.js';

/** A logical capture as the reader needs it: the function that writes its events, and which operations it takes. */
interface LogicalCapture {
  functionName: string;
  operations: Set<Operation>;
}

/** Internal settings of the reader (tests lower them). */
export interface LogicalReaderOptions {
  /** Changes of one transaction held in memory at most; past that they are staged in PostgreSQL, chunk by chunk. */
  chunkRows?: number;
}

const JSON_TYPES = new Set([114, 3802]); // json, jsonb: their values go into the row as JSON, not as strings
/** Changes held before the stream waits for them to be written (a burst is written in batches meanwhile). */
const MAX_PENDING = 5000;
const RETRY_MS = 5000;
/** Another process streams the slot: `replication slot … is active for PID …`. */
const OBJECT_IN_USE = '55006';
/** rowcast.advance_capture_progress refused a write: the recorded position is not where this reader left it. */
export const TAKEN_OVER = 'RCF01';

/**
 * Logical-replication capture: streams the committed changes of the tables in the `rowcast` publication from
 * this database's slot (pgoutput) and writes one event per change and capture, through the capture's function.
 *
 * - Only committed transactions are decoded, in commit order; a rolled-back one never reaches the slot's output.
 * - Exactly once: each batch of events is written in one transaction with the log position it ends at
 *   (rowcast.capture_progress); the slot is told that position only once that commit is on disk. After a crash the
 *   slot sends again what it was not told, and transactions at or before the recorded position are skipped.
 * - Fenced: a write moves the position only from where this reader last left it (compare-and-set,
 *   rowcast.advance_capture_progress, migration 021). A reader that lost the slot while a batch was in flight, to
 *   a process that took over and wrote further, has that batch refused whole and stops.
 * - One reader per database: a slot streams to one connection at a time. Every process tries; the others wait and
 *   try again every few seconds, so one takes over when the streaming one dies.
 * - Under a burst the stream is paused while a batch is written (pg-logical-replication's flow control), so memory
 *   stays bounded and the slot keeps the rest.
 * - A transaction of more than a chunk of changes (5,000, or 16 MB of rows) is staged in rowcast.capture_staging
 *   chunk by chunk while it is decoded, and promoted to events at its commit together with its end position; so
 *   memory and every statement's parameters stay bounded whatever the transaction's size.
 */
export class LogicalCaptureReader {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private service: LogicalReplicationService | null = null;
  private wakeUp: (() => void) | null = null;
  private captures = new Map<string, LogicalCapture[]>();
  /** Logical captures by name → their function: a backfill's message names its capture. */
  private functions = new Map<string, string>();
  /** Whether the server decodes logical messages in pgoutput (PostgreSQL 14+). */
  private messages: boolean | null = null;
  /** Position recorded with the last written batch: transactions ending at or before it are already events. */
  private written = 0n;
  /** What the slot may be told (slot-confirmations.ts). */
  private readonly confirmations: SlotConfirmations;
  /** One connection whose commits do not wait for the WAL flush (see slot-confirmations.ts). */
  private readonly writer: Pool;
  /** Messages received from the socket and not yet handled: the library queues them, heartbeats overtake them. */
  private unhandled = 0;
  private tx: OpenTransaction | null = null;
  private pending: Change[] = [];
  private pendingBytes = 0;
  private readonly chunkRows: number;
  private pendingEnd = 0n;
  private flushing: Promise<void> | null = null;
  private slot = '';
  /** True while this process streams the slot. */
  private streaming = false;
  /** The writer's backend while it promotes a staged transaction (which can take minutes): stop() cancels it. */
  private promoting: number | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly url: string,
    private readonly log: Logger,
    /** Called after events were written (this process's router can route them at once). */
    private readonly onCaptured: (events: number) => void,
    options: LogicalReaderOptions = {},
    private readonly database?: Partial<DatabaseSettings>,
  ) {
    this.chunkRows = options.chunkRows ?? CHUNK_ROWS;
    this.confirmations = new SlotConfirmations(pool, () => this.service);
    this.writer = createPool(url, { max: 1, applicationName: 'rowcast logical capture', asyncCommit: true, database });
  }

  start(): void {
    this.loop = this.run();
  }

  /** The config changed (`rowcast apply`): look again for logical captures, and reload them. */
  configChanged(): void {
    this.wakeUp?.();
    if (this.streaming) void this.loadCaptures().catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    // Rolled back, the promotion leaves no event; the next process stages and promotes the transaction again.
    if (this.promoting !== null)
      await this.pool.query('SELECT pg_cancel_backend($1)', [this.promoting]).catch(() => {});
    await this.service?.stop().catch(() => {});
    await this.loop;
    await this.writer.end();
  }

  private async run(): Promise<void> {
    let quietUntil = 0;
    while (!this.stopping) {
      try {
        this.slot ||= slotName((await this.pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db);
        if (!(await this.loadCaptures())) {
          if (!this.stopping) await this.sleep(RETRY_MS * 6);
          continue;
        }
        await this.stream();
      } catch (err) {
        const e = err as Error & { code?: string };
        if (this.stopping) break;
        // Another process streams: normal with several processes, so said once a minute, at debug level.
        if (e.code === TAKEN_OVER) {
          this.log.warn(
            { err: e.message, slot: this.slot },
            'logical capture: another process took over the slot; this reader’s in-flight batch was refused; standing by',
          );
        } else if (e.code === OBJECT_IN_USE) {
          if (Date.now() > quietUntil)
            this.log.debug({ slot: this.slot }, 'logical capture: another process streams the slot; standing by');
          quietUntil = Date.now() + 60_000;
        } else {
          this.log.warn(
            { err: e.message, slot: this.slot },
            'logical capture stopped; starting again from the last written position',
          );
        }
      } finally {
        this.streaming = false;
        await this.service?.stop().catch(() => {});
        this.service = null;
      }
      if (!this.stopping) await this.sleep(RETRY_MS);
    }
  }

  /** Reads the logical captures per table; false when there are none. */
  private async loadCaptures(): Promise<boolean> {
    const { rows } = await this.pool.query<{
      name: string;
      schema_name: string;
      table_name: string;
      function_name: string;
      operations: Operation[];
    }>(
      `SELECT name, schema_name, table_name, function_name, ARRAY(SELECT jsonb_array_elements_text(settings -> 'capture' -> 'operations')) AS operations
         FROM rowcast.captures WHERE settings -> 'capture' ->> 'mode' = 'logical'`,
    );
    const captures = new Map<string, LogicalCapture[]>();
    for (const r of rows) {
      const key = `${r.schema_name}.${r.table_name}`;
      captures.set(key, [
        ...(captures.get(key) ?? []),
        { functionName: r.function_name, operations: new Set(r.operations) },
      ]);
    }
    this.captures = captures;
    this.functions = new Map(rows.map((r) => [r.name, r.function_name]));
    return rows.length > 0;
  }

  private async stream(): Promise<void> {
    const { rows } = await this.pool.query<{ lsn: string }>(
      'SELECT lsn::text FROM rowcast.capture_progress WHERE slot = $1',
      [this.slot],
    );
    this.written = rows[0] ? lsnValue(rows[0].lsn) : 0n;
    this.confirmations.reset(this.written);
    this.unhandled = 0;
    this.tx = null;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingEnd = this.written;
    this.messages ??= await decodesMessages(this.pool);
    // Values as PostgreSQL's own text: the capture function rebuilds the row from it.
    const plugin = await textPlugin(PUBLICATION, this.messages, () => this.unhandled++);
    // Connect timeout and keepalive only: the stream is one long-running command.
    const service = await replicationService({
      ...(({ connectionTimeoutMillis, keepAlive, keepAliveInitialDelayMillis }) => ({
        connectionTimeoutMillis,
        keepAlive,
        keepAliveInitialDelayMillis,
      }))(connectionSettings(this.database)),
      connectionString: this.url,
      application_name: 'rowcast logical capture',
    });
    this.service = service;
    service.on('data', async (_lsn: string, message: Pgoutput.Message) => {
      try {
        await this.onMessage(message);
      } finally {
        this.unhandled--;
      }
    });
    service.on('heartbeat', (lsn: string, _time: number, reply: boolean) => {
      // The server's position: it has sent every transaction that committed before it. Idle (all of that handled
      // and written), the slot may let go of the log up to there. Otherwise only what was written is confirmed.
      // A heartbeat can arrive while messages before it still wait in the library's queue (`unhandled`).
      const confirmations = this.confirmations;
      const idle = !this.unhandled && !this.tx && !this.pending.length && !this.flushing && !confirmations.waiting;
      const position = idle && lsnValue(lsn) > confirmations.position ? lsnValue(lsn) : confirmations.position;
      if (position > confirmations.position) confirmations.position = position;
      if (reply || idle) void service.acknowledge(lsnText(confirmations.position)).catch(() => {});
    });
    service.on('start', () => {
      this.streaming = true;
      this.log.info({ slot: this.slot, written: lsnText(this.written) }, 'logical capture streaming');
    });
    let failed: Error | undefined;
    service.on('error', (err: Error) => {
      failed ??= err;
      void service.stop();
    });
    await service.subscribe(plugin, this.slot);
    await this.flushing;
    this.confirmations.stop();
    if (failed && !this.stopping) throw failed;
  }

  private async onMessage(message: Pgoutput.Message): Promise<void> {
    switch (message.tag) {
      case 'begin': {
        const commitLsn = message.commitLsn ?? '0/0';
        const skip = writtenBefore(commitLsn, this.pendingEnd > this.written ? this.pendingEnd : this.written);
        this.tx = { xid: message.xid, commitLsn, skip, changes: [], bytes: 0, staged: 0, part: 0, partOf: '' };
        return;
      }
      case 'insert':
        return this.add(message.relation, 'INSERT', null, message.new);
      case 'update':
        return this.add(message.relation, 'UPDATE', message.old, message.new);
      case 'delete':
        return this.add(message.relation, 'DELETE', message.old ?? message.key, null);
      case 'truncate':
        for (const relation of message.relations) await this.add(relation, 'TRUNCATE', null, null);
        return;
      case 'message':
        if (message.prefix === BACKFILL_PREFIX && message.transactional) return this.backfilled(message.content);
        return;
      case 'commit': {
        const tx = this.tx;
        this.tx = null;
        const end = lsnValue(message.commitEndLsn ?? '0/0');
        // Written before a restart: skipped, so that a change becomes one event however often it is sent.
        if (!tx || tx.skip || end <= this.written || end <= this.pendingEnd) return;
        if (tx.staged) return this.promote(tx, end);
        this.pendingEnd = end;
        for (const change of tx.changes) this.pending.push(change);
        this.pendingBytes += tx.bytes;
        this.flushSoon();
        // Backpressure: the stream waits while a large backlog is written.
        if (this.pending.length >= MAX_PENDING || this.pendingBytes >= CHUNK_BYTES) await this.flushing;
        return;
      }
      default:
        return;
    }
  }

  private async add(
    relation: Pgoutput.MessageRelation,
    op: Operation,
    old: Record<string, unknown> | null,
    row: Record<string, unknown> | null,
  ): Promise<void> {
    const tx = this.tx;
    if (!tx || tx.skip) return;
    const key = `${relation.schema}.${relation.name}`;
    // A table in the publication without a known capture: the captures were just changed; read them again.
    if (!this.captures.has(key)) await this.loadCaptures();
    const captures = this.captures.get(key);
    if (!captures) return;
    const oldJson = old && rowJson(relation, old);
    const newJson = row && rowJson(relation, row);
    for (const c of captures) {
      if (!c.operations.has(op)) continue;
      tx.changes.push({ fn: c.functionName, op, old: oldJson, new: newJson, xid: tx.xid });
      tx.bytes += (oldJson?.length ?? 0) + (newJson?.length ?? 0);
    }
    // Bounded memory whatever the transaction's size: a full chunk is staged (the stream waits meanwhile).
    if (tx.changes.length >= this.chunkRows || tx.bytes >= CHUNK_BYTES) await this.stage(tx);
  }

  /** A backfill batch's rows, in its transaction: one READ change each, written by the capture's function. */
  private async backfilled(content: Uint8Array): Promise<void> {
    const tx = this.tx;
    if (!tx || tx.skip) return;
    const batch = JSON.parse(Buffer.from(content).toString('utf8')) as { capture: string; rows: unknown[] };
    if (!this.functions.has(batch.capture)) await this.loadCaptures();
    const fn = this.functions.get(batch.capture);
    if (!fn) return; // the capture was removed since: nothing to send for it
    for (const row of batch.rows) {
      const json = JSON.stringify(row);
      tx.changes.push({ fn, op: 'READ', old: null, new: json, xid: tx.xid });
      tx.bytes += json.length;
    }
    if (tx.changes.length >= this.chunkRows || tx.bytes >= CHUNK_BYTES) await this.stage(tx);
  }

  /** Writes the changes held of an open transaction to rowcast.capture_staging (logical-writes.ts). */
  private stage(tx: OpenTransaction): Promise<void> {
    return stageChanges(this.writer, tx);
  }

  /**
   * A staged transaction committed: its events and its end position are written in one transaction
   * (promote_staged), after the transactions that committed before it. A failure throws: the stream starts again
   * from the last written position and the transaction is staged again.
   */
  private async promote(tx: OpenTransaction, end: bigint): Promise<void> {
    if (tx.changes.length) await this.stage(tx);
    this.flushSoon();
    await this.flushing;
    // An earlier batch failed to be written: the stream is starting again, and this transaction comes again.
    if (this.pending.length || this.written !== this.pendingEnd) return;
    const client = await this.writer.connect();
    let failed: Error | undefined;
    const stopKeepAlive = keepSlotAlive(this.service, () => this.confirmations.position);
    try {
      this.promoting = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      if (this.stopping) return;
      // Exempt from database.statementTimeout: a promotion of millions of rows takes minutes (stop() cancels it).
      await client.query('SET statement_timeout = 0');
      await client.query(
        withoutDeadline(
          `SELECT rowcast.promote_staged($1, $2::pg_lsn, $3::pg_lsn, $4::pg_lsn, $5, $6) AS promoted, (${WAKE}) AS woken`,
          [this.slot, lsnText(this.written), tx.commitLsn, lsnText(end), tx.staged, this.chunkRows],
        ),
      );
      await client.query('RESET statement_timeout');
    } catch (err) {
      failed = err as Error;
      throw err;
    } finally {
      stopKeepAlive();
      this.promoting = null;
      client.release(failed);
    }
    this.written = this.pendingEnd = end;
    this.confirmations.written(end);
    this.onCaptured(tx.staged);
    this.confirmations.soon();
  }

  private flushSoon(): void {
    this.flushing ??= this.flush().finally(() => (this.flushing = null));
  }

  /** Writes what is pending, batch after batch, each with its end position; then tells the slot. */
  private async flush(): Promise<void> {
    while (this.pending.length && this.service) {
      const batch = this.pending;
      const end = this.pendingEnd;
      this.pending = [];
      this.pendingBytes = 0;
      try {
        await this.write(batch, end);
      } catch (err) {
        // The stream starts again from the last written position; what was pending comes again.
        this.service?.emit('error', err);
        return;
      }
      this.written = end;
      this.onCaptured(batch.length);
      this.confirmations.soon();
    }
  }

  private async write(batch: Change[], end: bigint): Promise<void> {
    await writeChanges(this.writer, this.slot, this.written, end, batch);
    this.confirmations.written(end);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }
}

/** A row as the capture function takes it: column → PostgreSQL's text of the value (JSON columns as JSON). */
function rowJson(relation: Pgoutput.MessageRelation, row: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const column of relation.columns) {
    const value = row[column.name];
    // undefined: an unchanged large value the log did not repeat and no old row supplied. Cannot happen for
    // UPDATE captures, whose tables apply sets to REPLICA IDENTITY FULL (the library fills it from the old row).
    if (value === undefined) continue;
    out[column.name] = value !== null && JSON_TYPES.has(column.typeOid) ? JSON.parse(value as string) : value;
  }
  return JSON.stringify(out);
}

import type { LogicalReplicationService, Pgoutput } from 'pg-logical-replication';
import type pg from 'pg';
import type { CaptureConfig } from '../../config/capture-schema.js';
import type { DatabaseSettings } from '../../config/database-schema.js';
import type { PostgresSourceConfig } from '../../config/source-schema.js';
import type { Logger } from '../../observability/logger.js';
import { createClient, endClient, type Pool } from '../../store/pool.js';
import {
  BACKFILL_PREFIX,
  CHUNK_BYTES,
  CHUNK_ROWS,
  decodesMessages,
  keepSlotAlive,
  lsnText,
  lsnValue,
  replicationService,
  textPlugin,
  writtenBefore,
} from '../pgoutput.js';
import { insertSourceEvents, type SourceEventRow } from '../source-events.js';
import { WAKE } from '../wake.js';
import { collectBackfill, collectChange, type OpenTransaction, type SourceCapture } from './pgoutput-events.js';
import { connectPostgresSource, postgresSourceUrl, sourceObjects } from './postgres-source.js';
import { SourceTypes } from './source-types.js';
import { eventsJson } from './text-values.js';

/** A committed transaction's events, and the position after it. */
interface Committed {
  events: SourceEventRow[];
  end: bigint;
}

/** Internal settings of the reader (tests lower them). */
export interface SourceReaderOptions {
  /** Events of one transaction held in memory at most; past that they are staged in the store, chunk by chunk. */
  chunkRows?: number;
}

/** What the reader held and staged: a test's evidence of bounded memory. */
export interface SourceReaderStats {
  /** The most events held in memory at once (of the open transaction and those waiting to be written). */
  peakHeld: number;
  /** Events written through rowcast.source_staging. */
  staged: number;
}

const RETRY_MS = 5000;
/** How long a connection's goodbye may wait for its server (a stalled source must not hold a shutdown). */
const CLOSE_MS = 2000;
/** Committed transactions' events held before the stream waits for them to be written. */
const MAX_QUEUED_EVENTS = 5000;
/** One reader per source among all processes sharing the store (as MySQL sources: the same lock space). */
const LOCK_SQL = `SELECT pg_try_advisory_lock(hashtext('rowcast.source'), hashtext($1)) AS ok`;

/**
 * Reads one PostgreSQL source by logical replication (pgoutput) from the slot and publication apply made there,
 * and writes one event per captured change in the store.
 *
 * - Only committed transactions are decoded, in commit order.
 * - Exactly once into the store: each batch of transactions' events is written in one store transaction with the
 *   source's position after it (rowcast.source_progress, `{ "lsn": … }`); only then is the slot told. After a crash
 *   the slot sends again what it was not told, and transactions ending at or before the recorded position are
 *   skipped.
 * - One reader per source: the process holding the source's advisory lock in the store streams; others retry.
 * - Values arrive as PostgreSQL's text and are turned into JSON here (text-values.ts), as the store's trigger
 *   capture writes them: the store has no copy of the source's table types, so what converting user types
 *   (composites, domains, arrays of enums and ranges) needs is read from the source's catalog (source-types.ts).
 * - Bounded memory: a transaction of more than a chunk of events (5,000, or 16 MB of values) is staged in
 *   rowcast.source_staging chunk by chunk while it is decoded, and promoted to events at its commit with its end
 *   position (fenced like every write: the position moves only from where this reader left it), as the store's
 *   logical capture does. A crash before the promotion leaves no event; the slot sends the transaction again.
 */
export class PostgresSourceReader {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private service: LogicalReplicationService | null = null;
  private reload = false;
  private readonly chunkRows: number;
  readonly stats: SourceReaderStats = { peakHeld: 0, staged: 0 };

  constructor(
    private readonly pool: Pool,
    private readonly storeUrl: string,
    private readonly name: string,
    private readonly source: PostgresSourceConfig,
    private readonly log: Logger,
    private readonly onCaptured: (events: number) => void,
    private readonly database?: Partial<DatabaseSettings>,
    options: SourceReaderOptions = {},
  ) {
    this.chunkRows = options.chunkRows ?? CHUNK_ROWS;
  }

  start(): void {
    this.loop = this.run();
  }

  /** The captures changed (`rowcast apply`): start over with the new ones. */
  configChanged(): void {
    this.reload = true;
    void this.service?.stop().catch(() => {});
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    await this.service?.stop().catch(() => {});
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.reload = false;
      try {
        await this.stream();
      } catch (err) {
        if (!this.stopping && !this.reload) {
          const e = err as Error & { code?: string };
          // 55006: another connection streams the slot (a rowcast of another store, or one of this store's restarting).
          this.log.warn(
            { source: this.name, err: e.message },
            `source ${this.name}: logical replication stopped; starting again from the last written position in ${RETRY_MS / 1000} s`,
          );
        }
      }
      if (!this.stopping && !this.reload) await new Promise<void>((r) => ((this.wakeUp = r), setTimeout(r, RETRY_MS)));
    }
  }

  private async stream(): Promise<void> {
    const store = createClient(this.storeUrl, `rowcast source ${this.name}`, this.database);
    store.on('error', () => {});
    await store.connect();
    let catalog: pg.Client | null = null;
    try {
      if (!(await store.query<{ ok: boolean }>(LOCK_SQL, [this.name])).rows[0]!.ok) return; // another process reads it
      const captures = await this.loadCaptures(store);
      if (!captures.size) return;
      const { rows } = await store.query<{ lsn: string | null }>(
        `SELECT position ->> 'lsn' AS lsn FROM rowcast.source_progress WHERE source = $1`,
        [this.name],
      );
      let written = rows[0]?.lsn ? lsnValue(rows[0].lsn) : 0n;
      const { slot, publication } = sourceObjects(this.name, this.source);
      const url = postgresSourceUrl(this.name, this.source);
      const database = (() => {
        try {
          return decodeURIComponent(new URL(url).pathname.slice(1)) || null;
        } catch {
          return null;
        }
      })();

      // Backfills' rows arrive as logical messages, which pgoutput decodes from PostgreSQL 14.
      // The same connection reads the source's catalog for user types (source-types.ts) while streaming.
      catalog = await connectPostgresSource(this.name, this.source, 'rowcast source capture');
      const messages = await decodesMessages(catalog);
      const types = new SourceTypes(catalog);
      // Values as PostgreSQL's own text: converted by type here (text-values.ts), without losing digits.
      const plugin = await textPlugin(publication, messages);
      const service = await replicationService({ connectionString: url, application_name: 'rowcast source capture' });
      this.service = service;
      if (this.stopping || this.reload) return;

      let open: OpenTransaction | null = null;
      /** A staged transaction is being promoted: not idle, though nothing is open or queued. */
      let promoting = false;
      const queue: Committed[] = [];
      let queued = 0;
      let writing: Promise<void> | null = null;
      let failed: Error | undefined;
      const fail = (err: Error) => {
        failed ??= err;
        void service.stop().catch(() => {});
      };

      // Nothing queued: nothing to start (an empty run would end before `writing` is assigned, and stay assigned).
      const flush = (): Promise<void> =>
        !queue.length
          ? (writing ?? Promise.resolve())
          : (writing ??= (async () => {
              try {
                while (queue.length) {
                  const batch = queue.splice(0, queue.length);
                  queued = 0;
                  const events = batch.flatMap((t) => t.events);
                  const end = batch.at(-1)!.end;
                  await this.writeBatch(store, events, written, end);
                  written = end;
                  // Written and committed in the store: the slot may let go of it.
                  await service.acknowledge(lsnText(written)).catch(() => {});
                }
              } catch (err) {
                fail(err as Error);
              } finally {
                writing = null;
              }
            })());

      /** Writes the events held of an open transaction to rowcast.source_staging, after what is queued. */
      const stage = async (tx: OpenTransaction): Promise<void> => {
        this.stats.peakHeld = Math.max(this.stats.peakHeld, tx.events.length + queued);
        await flush();
        if (failed) return;
        const events = tx.events;
        tx.events = [];
        tx.chars = 0;
        // What a reader of this source left staged (a transaction it did not finish) goes first.
        if (!tx.staged) await store.query('DELETE FROM rowcast.source_staging WHERE source = $1', [this.name]);
        await store.query(
          `INSERT INTO rowcast.source_staging (source, lsn, seq, event)
           SELECT $1, $2::pg_lsn, $3::bigint + a.ord - 1, a.e FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS a(e, ord)`,
          [this.name, tx.commitLsn, tx.staged, eventsJson(events)],
        );
        tx.staged += events.length;
      };
      /** A staged transaction committed: its events and end position in one store transaction (migration 029). */
      const promote = async (tx: OpenTransaction, end: bigint): Promise<void> => {
        if (tx.events.length) await stage(tx);
        await flush();
        if (failed) return;
        const stopKeepAlive = keepSlotAlive(service, () => written);
        promoting = true;
        try {
          await store.query(
            `SELECT rowcast.promote_source_staged($1, $2::pg_lsn, $3::pg_lsn, $4::pg_lsn, $5), (${WAKE})`,
            [this.name, lsnText(written), tx.commitLsn, lsnText(end), tx.staged],
          );
        } finally {
          promoting = false;
          stopKeepAlive();
        }
        written = end;
        this.stats.staged += tx.staged;
        this.onCaptured(tx.staged);
        await service.acknowledge(lsnText(written)).catch(() => {});
      };
      /** After a change was collected: a full chunk of the open transaction is staged (the stream waits meanwhile). */
      const bound = async (): Promise<void> => {
        if (open && !open.skip && (open.events.length >= this.chunkRows || open.chars >= CHUNK_BYTES))
          await stage(open).catch(fail);
      };

      // A row change: its relation's types read once, then collected like any other change.
      const change = async (
        relation: Pgoutput.MessageRelation,
        op: 'INSERT' | 'UPDATE' | 'DELETE',
        before: Record<string, unknown> | null,
        after: Record<string, unknown> | null,
      ) => {
        await types.learnRelation(relation);
        collectChange(this.name, open, captures, database, types.lookup, relation, op, before, after);
        return bound();
      };

      service.on('data', async (_lsn: string, message: Pgoutput.Message) => {
        switch (message.tag) {
          case 'begin': {
            const commitLsn = message.commitLsn ?? '0/0';
            const last = queue.length ? queue.at(-1)!.end : written;
            open = { events: [], chars: 0, staged: 0, skip: writtenBefore(commitLsn, last), commitLsn };
            return;
          }
          case 'relation':
            // Sent before a table's first change and again after it changed: its types may have changed too.
            types.forget();
            return;
          case 'insert':
            return change(message.relation, 'INSERT', null, message.new);
          case 'update':
            return change(message.relation, 'UPDATE', message.old, message.new);
          case 'delete':
            return change(message.relation, 'DELETE', message.old ?? message.key, null);
          case 'truncate':
            for (const relation of message.relations)
              collectChange(this.name, open, captures, database, types.lookup, relation, 'TRUNCATE', null, null);
            return bound();
          case 'message':
            if (message.prefix === BACKFILL_PREFIX && message.transactional)
              await collectBackfill(this.name, open, captures, database, types, message.content);
            return bound();
          case 'commit': {
            const tx = open;
            open = null;
            const end = lsnValue(message.commitEndLsn ?? '0/0');
            const last = queue.length ? queue.at(-1)!.end : written;
            // Written before a restart (or no captured change): nothing to write for it.
            if (!tx || tx.skip || end <= last || !(tx.events.length || tx.staged)) return;
            if (tx.staged) return promote(tx, end).catch(fail);
            queue.push({ events: tx.events, end });
            queued += tx.events.length;
            this.stats.peakHeld = Math.max(this.stats.peakHeld, queued);
            const flushed = flush();
            // Backpressure: the stream waits while a large backlog is written (flow control awaits this handler).
            if (queued >= MAX_QUEUED_EVENTS) await flushed;
            return;
          }
          default:
            return;
        }
      });
      service.on('heartbeat', (lsn: string, _time: number, reply: boolean) => {
        // Idle (nothing open nor waiting to be written): the server has sent everything before lsn, and nothing of
        // it was for rowcast, so the slot may let go of it; otherwise only what was written is confirmed.
        const idle = !open && !queue.length && !writing && !promoting;
        const position = idle && lsnValue(lsn) > written ? lsnValue(lsn) : written;
        if (reply || idle) void service.acknowledge(lsnText(position)).catch(() => {});
      });
      service.on('start', () =>
        this.log.info(
          { source: this.name, slot, written: lsnText(written) },
          `source ${this.name}: streaming by logical replication`,
        ),
      );
      service.on('error', (err: Error) => fail(err));
      await service.subscribe(plugin, slot).catch((err: Error) => fail(err));
      await writing;
      if (failed && !this.stopping && !this.reload) throw failed;
    } finally {
      await this.service?.stop().catch(() => {});
      this.service = null;
      await endClient(catalog, CLOSE_MS);
      await endClient(store, CLOSE_MS);
    }
  }

  /** The captures of this source, keyed "schema.table". */
  private async loadCaptures(store: pg.Client): Promise<Map<string, SourceCapture[]>> {
    const { rows } = await store.query<{
      name: string;
      schema_name: string;
      table_name: string;
      capture: CaptureConfig;
      key: string[] | null;
    }>(
      `SELECT name, schema_name, table_name, settings -> 'capture' AS capture, ARRAY(SELECT jsonb_array_elements_text(settings -> 'key')) AS key
         FROM rowcast.captures WHERE settings -> 'capture' ->> 'source' = $1`,
      [this.name],
    );
    const map = new Map<string, SourceCapture[]>();
    for (const r of rows) {
      const key = `${r.schema_name}.${r.table_name}`;
      map.set(key, [...(map.get(key) ?? []), { name: r.name, capture: r.capture, key: r.key ?? [] }]);
    }
    return map;
  }

  /** Writes a batch's events and the position after it in one store transaction (fenced: from `from` only). */
  private async writeBatch(store: pg.Client, events: SourceEventRow[], from: bigint, end: bigint): Promise<void> {
    await store.query('BEGIN');
    try {
      await insertSourceEvents(store, events);
      await store.query('SELECT rowcast.advance_source_lsn($1, $2::pg_lsn, $3::pg_lsn)', [
        this.name,
        lsnText(from),
        lsnText(end),
      ]);
      if (events.length) await store.query(WAKE);
      await store.query('COMMIT');
    } catch (err) {
      await store.query('ROLLBACK').catch(() => {});
      throw err;
    }
    if (events.length) this.onCaptured(events.length);
  }
}

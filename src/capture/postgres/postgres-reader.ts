import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type pg from 'pg';
import type { CaptureConfig, Operation } from '../../config/capture-schema.js';
import type { DatabaseSettings } from '../../config/database-schema.js';
import type { PostgresSourceConfig } from '../../config/source-schema.js';
import type { Logger } from '../../observability/logger.js';
import { createClient, type Pool } from '../../store/pool.js';
import { BACKFILL_PREFIX, CHUNK_BYTES, CHUNK_ROWS, keepSlotAlive, lsnText, lsnValue, WAKE } from '../logical-reader.js';
import { connectPostgresSource, postgresSourceUrl, sourceObjects } from './postgres-source.js';
import { pgTextValue } from './text-values.js';

interface SourceCapture {
  name: string;
  capture: CaptureConfig;
  /** The table's primary key on the source, as apply read it. */
  key: string[];
}

/** One rowcast event, as written to rowcast.events. */
export interface SourceEventRow {
  capture: string;
  topic: string | null;
  function: string | null;
  op: string;
  schema_name: string;
  table_name: string;
  key: unknown;
  before: unknown;
  after: unknown;
  changed: string[] | null;
  source: unknown;
}

/** A committed transaction's events, and the position after it. */
interface Committed {
  events: SourceEventRow[];
  end: bigint;
}

/**
 * The transaction being decoded: its events not yet written, and how many went to rowcast.source_staging already
 * (a transaction larger than a chunk is staged chunk by chunk and promoted at its commit, migration 029).
 */
interface OpenTransaction {
  events: SourceEventRow[];
  /** Characters of the rows' values held in `events`. */
  chars: number;
  staged: number;
  /** Written before a restart: its changes are not collected. */
  skip: boolean;
  commitLsn: string;
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
/** Committed transactions' events held before the stream waits for them to be written. */
const MAX_QUEUED_EVENTS = 5000;
const RAW = (text: unknown) => text;
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
 * - Values arrive as PostgreSQL's text and are turned into JSON here (text-values.ts), as the store's captures
 *   write them: the store has no copy of the source's table types.
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
      const messages = await decodesMessages(this.name, this.source);
      const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication], messages });
      // Values as PostgreSQL's own text (see logical-reader.ts): converted by type here, without losing digits.
      const parse = plugin.parse.bind(plugin);
      plugin.parse = (buffer: Buffer) => {
        const message = parse(buffer);
        if (message.tag === 'relation') for (const column of message.columns) column.parser = RAW;
        return message;
      };
      const service = new LogicalReplicationService(
        {
          connectionString: url,
          application_name: 'rowcast source capture',
          options: '-c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3',
        },
        { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
      );
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
          [this.name, tx.commitLsn, tx.staged, JSON.stringify(events)],
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

      service.on('data', async (_lsn: string, message: Pgoutput.Message) => {
        switch (message.tag) {
          case 'begin': {
            const commitLsn = message.commitLsn ?? '0/0';
            // A transaction's commit record starts at or after the end of every earlier one: one that starts before
            // the written position was written before a restart (checked again at its commit).
            const last = queue.length ? queue.at(-1)!.end : written;
            open = {
              events: [],
              chars: 0,
              staged: 0,
              skip: lsnValue(commitLsn) > 0n && lsnValue(commitLsn) < last,
              commitLsn,
            };
            return;
          }
          case 'insert':
            this.collect(open, captures, database, message.relation, 'INSERT', null, message.new);
            return bound();
          case 'update':
            this.collect(open, captures, database, message.relation, 'UPDATE', message.old, message.new);
            return bound();
          case 'delete':
            this.collect(open, captures, database, message.relation, 'DELETE', message.old ?? message.key, null);
            return bound();
          case 'truncate':
            for (const relation of message.relations)
              this.collect(open, captures, database, relation, 'TRUNCATE', null, null);
            return bound();
          case 'message':
            if (message.prefix === BACKFILL_PREFIX && message.transactional)
              this.backfilled(open, captures, database, message.content);
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
      await store.end().catch(() => {});
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

  /** The events of one decoded change, for every capture of its table that takes its operation. */
  private collect(
    tx: OpenTransaction | null,
    captures: Map<string, SourceCapture[]>,
    database: string | null,
    relation: Pgoutput.MessageRelation,
    op: Operation,
    oldRow: Record<string, unknown> | null,
    newRow: Record<string, unknown> | null,
  ): void {
    if (!tx || tx.skip) return;
    const list = captures.get(`${relation.schema}.${relation.name}`);
    if (!list) return;
    const before = oldRow && rowValues(relation, oldRow);
    const after = newRow && rowValues(relation, newRow);
    const chars = textChars(oldRow) + textChars(newRow);
    for (const c of list) {
      if (!c.capture.operations.includes(op)) continue;
      tx.chars += chars;
      tx.events.push(
        sourceEvent(
          c,
          op,
          before,
          after,
          {
            capture: c.name,
            kind: 'postgres',
            server: this.name,
            database,
            schema: relation.schema,
            table: relation.name,
            position: { lsn: tx.commitLsn },
          },
          relation.schema,
          relation.name,
        ),
      );
    }
  }

  /**
   * A backfill batch (backfill-source.ts), a logical message of its transaction on the source: its rows as
   * PostgreSQL's text with their type oids, converted as a change's values are, one READ event each.
   */
  private backfilled(
    tx: OpenTransaction | null,
    captures: Map<string, SourceCapture[]>,
    database: string | null,
    content: Uint8Array,
  ): void {
    if (!tx || tx.skip) return;
    const batch = JSON.parse(Buffer.from(content).toString('utf8')) as {
      capture: string;
      columns: string[];
      types: number[];
      rows: (string | null)[][];
    };
    for (const [table, list] of captures) {
      const c = list.find((x) => x.name === batch.capture);
      if (!c) continue;
      const dot = table.indexOf('.');
      const [schema, name] = [table.slice(0, dot), table.slice(dot + 1)];
      const source = {
        capture: c.name,
        kind: 'postgres',
        server: this.name,
        database,
        schema,
        table: name,
        position: { lsn: tx.commitLsn },
      };
      for (const row of batch.rows) {
        const after = Object.fromEntries(
          batch.columns.map((column, i) => [column, pgTextValue(row[i] ?? null, batch.types[i]!)]),
        );
        tx.events.push(sourceEvent(c, 'READ', null, after, source, schema, name));
      }
      return;
    }
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

/** Whether the source's server decodes logical messages in pgoutput (PostgreSQL 14+). */
async function decodesMessages(name: string, source: PostgresSourceConfig): Promise<boolean> {
  const c = await connectPostgresSource(name, source, 'rowcast source capture');
  try {
    return (
      Number((await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) >= 140000
    );
  } finally {
    await c.end().catch(() => {});
  }
}

/** A decoded row as JSON values (text-values.ts); an unchanged large value the log did not repeat is left out. */
function rowValues(relation: Pgoutput.MessageRelation, row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const column of relation.columns) {
    const value = row[column.name];
    if (value === undefined) continue;
    out[column.name] = pgTextValue(value as string | null, column.typeOid);
  }
  return out;
}

/** Characters of a decoded row's text values: what holding it costs, roughly. */
function textChars(row: Record<string, unknown> | null): number {
  let n = 0;
  if (row) for (const v of Object.values(row)) if (typeof v === 'string') n += v.length;
  return n;
}

/** Only some columns of a row (a capture's `columns`), in that order. */
const pick = (row: Record<string, unknown>, columns?: string[]) =>
  columns ? Object.fromEntries(columns.filter((c) => c in row).map((c) => [c, row[c]])) : row;

/**
 * One event of a source's change in the store's shape (key, before/after per payload, changed columns); also used
 * by backfills (op READ: `after` only).
 */
export function sourceEvent(
  c: SourceCapture,
  op: string,
  before: Record<string, unknown> | null,
  after: Record<string, unknown> | null,
  source: unknown,
  schema: string,
  table: string,
): SourceEventRow {
  const { capture } = c;
  const image = after ?? before;
  const key =
    image && c.key.length && c.key.every((k) => k in image)
      ? Object.fromEntries(c.key.map((k) => [k, image[k]]))
      : null;
  const e: SourceEventRow = {
    capture: c.name,
    topic: capture.topic ?? null,
    function: capture.function ?? null,
    op,
    schema_name: schema,
    table_name: table,
    key,
    before: null,
    after: null,
    changed: null,
    source,
  };
  if (!image) return e; // TRUNCATE: no rows
  if (capture.payload === 'keys') {
    // Without a primary key the whole row is its only identity (as for the store's captures).
    e.key = key ?? image;
  } else if (capture.payload === 'row') {
    if (op === 'DELETE') e.before = pick(before!, capture.columns);
    else e.after = pick(after!, capture.columns);
  } else {
    const o = before && pick(before, capture.columns);
    const n = after && pick(after, capture.columns);
    e.before = o;
    e.after = n;
    if (o && n) e.changed = Object.keys(n).filter((k) => JSON.stringify(n[k]) !== JSON.stringify(o[k]));
  }
  return e;
}

/** Inserts events built in JavaScript, in their order (event ids follow it). */
export async function insertSourceEvents(
  store: { query(sql: string, values?: unknown[]): Promise<unknown> },
  events: SourceEventRow[],
): Promise<void> {
  if (!events.length) return;
  await store.query(
    `INSERT INTO rowcast.events (capture, topic, function, op, schema_name, table_name, key, before, after, changed, source)
     SELECT x.capture, x.topic, x.function, x.op, x.schema_name, x.table_name, x.key, x.before, x.after, x.changed, x.source
       FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(e, ord),
            jsonb_to_record(a.e) AS x(capture text, topic text, function text, op text, schema_name text, table_name text,
                                      key jsonb, before jsonb, after jsonb, changed text[], source jsonb)
      ORDER BY a.ord`,
    [JSON.stringify(events)],
  );
}

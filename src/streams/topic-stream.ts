import { LOG_END_SQL } from '../store/log-leases.js';
import type { ServerResponse } from 'node:http';
import { WakeSignal } from '../queue/wake-signal.js';
import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import { type MessageRow, StreamClient, toEvent } from './stream-client.js';

/**
 * GET /topics/:name/stream — a topic's messages as Server-Sent Events: `id:` the message's seq, `event: message`,
 * `data:` the message in the envelope format. A `Last-Event-ID` header (or `?lastEventId=`) replays the messages
 * after that id that retention has kept, then continues live; without one the stream starts now.
 *
 * Order and completeness. seq is drawn when a message is inserted, but a lower seq can commit after a higher
 * one, so a cursor must never pass a seq some running transaction may still commit. Filtering rows by
 * `txid < pg_snapshot_xmin(...)` alone is not enough: a transaction that got its xid early (the router updates
 * events before it inserts messages) can insert a higher seq, and commit, while a younger transaction that drew a
 * lower seq is still open — a cursor advanced past the higher seq would skip the lower one for good. So the
 * streams advance only up to a watermark every lower seq of which is settled:
 *
 *   each tick  (1) H := the sequence's last value, then (2) W := the transactions now holding a write lock on
 *   rowcast.messages or rowcast.log_segments (pg_locks; routing draws the seqs of segments: migration 042). Anyone
 *   who drew a seq ≤ H did so inside an INSERT that took that lock first and keeps it until it ends, so once
 *   every transaction of W has ended, every row with seq ≤ H is committed (and visible) or rolled back. That H is
 *   then the watermark; with W empty, at once. While H has not moved past the watermark, (2) is not read.
 *
 * The watermark is shared by all topics; each topic with clients has one poller that reads
 * `seq > cursor AND seq <= watermark ORDER BY seq` and writes to all its live clients. Clients that resume from
 * an older id catch up with their own reads (up to the poller's cursor) and then join it. This needs the
 * sequence's CACHE to be 1 (the default): values cached by a session could be drawn after the check.
 *
 * Bounded memory: a live client whose socket buffer grows past maxBufferedBytes is disconnected (it resumes
 * with Last-Event-ID); a catching-up client is paced by its socket instead.
 */
export interface TopicStreamOptions {
  /** How often a topic with clients is polled when no wake-up comes (ms). */
  pollInterval?: number;
  /** Messages read per query. */
  batchSize?: number;
  /** Interval of `: keepalive` comments (ms). */
  keepAlive?: number;
  /** Unsent bytes a client may have queued before it is disconnected. */
  maxBufferedBytes?: number;
  /** How long a catching-up client may take to drain its socket before it is disconnected (ms). */
  drainTimeout?: number;
  /** The reconnection delay sent to EventSource clients (`retry:`, ms). */
  retry?: number;
}

export const DEFAULTS: Required<TopicStreamOptions> = {
  pollInterval: 150,
  batchSize: 100,
  keepAlive: 15_000,
  maxBufferedBytes: 1024 * 1024,
  drainTimeout: 30_000,
  retry: 1000,
};

const MIN_TICK_GAP_MS = 20;
/** Watermarks not yet settled that are remembered (one per tick); older ones are dropped, which only delays. */
const MAX_BARRIERS = 64;

const ROWS_SQL = `
SELECT m.seq::text AS seq, m.id::text AS id, m.topic, m.subject, m.body, m.content_type, m.attributes,
       to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at, m.trace
  -- The topic's message rows and segment entries (migration 042) up to the batch's last seq; not a message sent to
  -- one subscription only (a test message: migration 038).
  FROM rowcast.log_messages($1, $2::bigint, (SELECT coalesce(max(s), $3::bigint) FROM rowcast.log_seqs($1, $2::bigint, $3::bigint, $4) s)) m
 WHERE m.recipient IS NULL
 ORDER BY m.seq -- the column: a bare "seq" would be the text alias, and "10" sorts before "9"
 LIMIT $4`;

const SEQUENCE_SQL = `SELECT ${LOG_END_SQL}::text AS h,
       pg_postmaster_start_time()::text AS started`;
/** The last message of a topic that was there before the server (re)started. */
const SURVIVED_SQL = `SELECT greatest(
  (SELECT m.seq FROM rowcast.messages m WHERE m.topic = $1 AND m.created_at < pg_postmaster_start_time() ORDER BY m.seq DESC LIMIT 1),
  (SELECT g.last_seq FROM rowcast.log_segments g WHERE g.topic = $1 AND g.created_at < pg_postmaster_start_time() ORDER BY g.last_seq DESC LIMIT 1))::text AS seq`;

/**
 * Transactions that may be inserting into the log now (rowcast.messages, or routing's segments: migration 042), and
 * which of the given ones are still running.
 */
const WRITERS_SQL = `
SELECT coalesce(array_agg(DISTINCT l.virtualtransaction) FILTER (
         WHERE l.locktype = 'relation' AND l.relation IN ('rowcast.messages'::regclass, 'rowcast.log_segments'::regclass)
           AND l.mode = 'RowExclusiveLock'
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())), '{}') AS writers,
       coalesce(array_agg(DISTINCT l.virtualtransaction) FILTER (WHERE l.virtualtransaction = ANY($1::text[])), '{}') AS alive
  FROM pg_locks l`;

interface TopicPoller {
  topic: string;
  /** Every message of the topic with seq ≤ cursor went to the live clients; null until the first watermark after creation settles. */
  cursor: bigint | null;
  /** The first watermark taken after this poller was created: its first cursor, so that it does not page through old messages. */
  initAfter: number;
  clients: Set<StreamClient>;
}

interface Barrier {
  id: number;
  seq: bigint;
  writers: string[];
}

/** The shared pollers of one HTTP server: one per topic with clients, all driven by one loop. */
export class TopicStreamHub {
  private readonly options: Required<TopicStreamOptions>;
  private readonly pollers = new Map<string, TopicPoller>();
  private readonly signal = new WakeSignal();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private closed = false;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  /** Every message with seq ≤ safe is committed or rolled back; -1 until a watermark settled. */
  private safe = -1n;
  private safeBarrier = -1;
  private nextBarrier = 0;
  private barriers: Barrier[] = [];
  /** When the server was started, as of the last tick: a change means it restarted (see rewind). */
  private serverStartedAt: string | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    options: TopicStreamOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  }

  get clientCount(): number {
    let n = 0;
    for (const p of this.pollers.values()) n += p.clients.size;
    return n;
  }

  /** New messages may exist: poll now. */
  wake(): void {
    if (this.running) this.signal.kick();
  }

  /**
   * "Now" for a stream without Last-Event-ID: the last seq drawn so far. Every message inserted after it has a
   * higher seq, so a client that asked before a message was written receives it.
   */
  async now(): Promise<bigint> {
    return BigInt((await this.sequence()).h);
  }

  private async sequence(): Promise<{ h: string; started: string }> {
    return (await this.pool.query<{ h: string; started: string }>(SEQUENCE_SQL)).rows[0]!;
  }

  /**
   * PostgreSQL restarted, after a crash perhaps. What it lost may include messages (routing commits without waiting
   * for its flush), and the seq sequence may then start again below what the streams have passed: new messages
   * would get seqs that cursors have left behind. Every stream goes back to the last message that survived, and the
   * watermark settles anew; a client may receive again, under the same message id, what it had from a lost routing.
   */
  private async rewind(): Promise<void> {
    this.barriers = [];
    this.safe = -1n;
    for (const poller of this.pollers.values()) {
      if (poller.cursor === null) continue;
      const { rows } = await this.pool.query<{ seq: string }>(SURVIVED_SQL, [poller.topic]);
      const back = BigInt(rows[0]?.seq ?? 0);
      if (back < poller.cursor) poller.cursor = back;
      for (const c of poller.clients) if (c.cursor > back) c.cursor = back;
    }
    this.log.warn(
      { topics: this.pollers.size },
      'topic streams: PostgreSQL restarted; streams go back to the last message it kept',
    );
  }

  /** Streams a topic's messages after `from` to a response whose SSE headers have been sent. */
  subscribe(topic: string, res: ServerResponse, from: bigint): void {
    const client = new StreamClient(res, from);
    if (this.closed) return client.end();
    let poller = this.pollers.get(topic);
    if (!poller) {
      poller = { topic, cursor: null, initAfter: this.nextBarrier, clients: new Set() };
      this.pollers.set(topic, poller);
    }
    poller.clients.add(client);
    const p = poller;
    const gone = () => {
      client.closed = true;
      p.clients.delete(client);
      if (!p.clients.size && this.pollers.get(topic) === p) this.pollers.delete(topic);
      if (!this.pollers.size) this.stopKeepAlive();
    };
    res.on('close', gone);
    // A write to a connection that just broke must not become an unhandled 'error'.
    res.on('error', () => {});
    // The client may have left before we got here ('close' was emitted already).
    if (res.destroyed || !res.socket || res.socket.destroyed) return gone();
    if (p.cursor !== null) this.start(p, client);
    this.keepAliveTimer ??= setInterval(() => this.keepAliveAll(), this.options.keepAlive).unref();
    if (!this.running) {
      this.running = true;
      this.loopDone = this.run();
    } else this.signal.kick();
  }

  /** Ends every stream (clients reconnect elsewhere or later) and stops polling. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopKeepAlive();
    for (const p of this.pollers.values()) for (const c of p.clients) c.end();
    this.pollers.clear();
    this.signal.kick();
    await this.loopDone;
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private keepAliveAll(): void {
    for (const p of this.pollers.values())
      for (const c of p.clients) c.write(': keepalive\n\n', this.options.maxBufferedBytes);
  }

  private async run(): Promise<void> {
    try {
      while (!this.closed && this.pollers.size) {
        let again = false;
        try {
          again = await this.tick();
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'topic streams: polling failed; trying again');
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (again || this.closed || !this.pollers.size) continue;
        // Wake-ups come with every routed batch under load: at most one look per MIN_TICK_GAP_MS for them.
        if (await this.signal.wait(this.options.pollInterval)) await new Promise((r) => setTimeout(r, MIN_TICK_GAP_MS));
      }
    } finally {
      this.running = false;
    }
  }

  /** Moves the watermark, then each topic's poller up to it. True if there is more to read at once. */
  private async tick(): Promise<boolean> {
    await this.advanceWatermark();
    let again = false;
    for (const poller of [...this.pollers.values()]) {
      if (this.closed) break;
      if (poller.cursor === null) {
        if (this.safeBarrier < poller.initAfter || this.safe < 0n) continue;
        poller.cursor = this.safe;
        for (const c of poller.clients) this.start(poller, c);
      }
      if (this.safe > poller.cursor && poller.clients.size) again = (await this.pollTopic(poller)) || again;
    }
    return again;
  }

  private async advanceWatermark(): Promise<void> {
    // Order matters: the sequence first, then the lock holders (see the top of this file).
    const { h: last, started } = await this.sequence();
    if (this.serverStartedAt !== null && started !== this.serverStartedAt) await this.rewind();
    this.serverStartedAt = started;
    const h = BigInt(last);
    const tracked = [...new Set(this.barriers.flatMap((b) => b.writers))];
    // Nothing drawn past the watermark: nothing below it is in flight, and the lock table is not read.
    const held =
      h <= this.safe
        ? { writers: [], alive: [] }
        : (await this.pool.query<{ writers: string[]; alive: string[] }>(WRITERS_SQL, [tracked])).rows[0]!;
    const alive = new Set(held.alive);
    for (let i = this.barriers.length - 1; i >= 0; i--) {
      const b = this.barriers[i]!;
      if (b.writers.every((w) => !alive.has(w))) {
        this.settle(b);
        this.barriers = this.barriers.slice(i + 1);
        break;
      }
    }
    const barrier: Barrier = { id: this.nextBarrier++, seq: h, writers: held.writers };
    if (!barrier.writers.length) {
      this.settle(barrier);
      this.barriers = [];
    } else {
      this.barriers.push(barrier);
      if (this.barriers.length > MAX_BARRIERS) this.barriers.shift();
    }
  }

  private settle(b: Barrier): void {
    if (b.id <= this.safeBarrier) return;
    this.safeBarrier = b.id;
    if (b.seq > this.safe) this.safe = b.seq;
  }

  private readRows(topic: string, after: bigint, upTo: bigint): Promise<MessageRow[]> {
    return this.pool
      .query<MessageRow>(ROWS_SQL, [topic, after.toString(), upTo.toString(), this.options.batchSize])
      .then((r) => r.rows);
  }

  /** Reads the next messages up to the watermark and writes them to the live clients. True if a full batch was read. */
  private async pollTopic(poller: TopicPoller): Promise<boolean> {
    const upTo = this.safe;
    const rows = await this.readRows(poller.topic, poller.cursor!, upTo);
    const live = [...poller.clients].filter((c) => c.state === 'live');
    for (const row of rows) {
      const seq = BigInt(row.seq);
      const event = toEvent(row);
      for (const c of live) {
        if (c.cursor >= seq) continue;
        if (c.write(event, this.options.maxBufferedBytes)) c.cursor = seq;
      }
    }
    const full = rows.length === this.options.batchSize;
    // Fewer than a batch: there is nothing else up to the watermark.
    poller.cursor = full ? BigInt(rows.at(-1)!.seq) : upTo;
    for (const c of live) if (c.cursor < poller.cursor) c.cursor = poller.cursor;
    return full;
  }

  /** A client of an initialised poller: live at once, or after catching up from where it starts. */
  private start(poller: TopicPoller, client: StreamClient): void {
    if (client.state !== 'pending' || client.closed) return;
    if (client.from >= poller.cursor!) {
      client.cursor = client.from;
      client.state = 'live';
      return;
    }
    client.cursor = client.from;
    client.state = 'catching-up';
    void this.catchUp(poller, client).catch((err: Error) => {
      this.log.warn(
        { err: err.message, topic: poller.topic },
        'topic stream: replay failed; disconnecting the client (it resumes with Last-Event-ID)',
      );
      client.drop();
    });
  }

  /** Replays from the client's cursor up to the poller's, paced by the client's socket, then hands it to the poller. */
  private async catchUp(poller: TopicPoller, client: StreamClient): Promise<void> {
    while (!client.closed) {
      const upTo = poller.cursor!;
      // Synchronous with the poller's writes: from here on it sends this client everything after upTo.
      if (client.cursor >= upTo) {
        client.state = 'live';
        return;
      }
      const rows = await this.readRows(poller.topic, client.cursor, upTo);
      for (const row of rows) {
        if (client.closed) return;
        client.res.write(toEvent(row));
        client.cursor = BigInt(row.seq);
        if (client.res.writableLength > this.options.maxBufferedBytes && !(await this.drained(client))) return;
      }
      if (rows.length < this.options.batchSize) client.cursor = upTo;
    }
  }

  private drained(client: StreamClient): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        client.res.off('drain', onDrain);
        client.res.off('close', onClose);
        if (!ok && !client.closed) client.drop();
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => done(false), this.options.drainTimeout);
      client.res.on('drain', onDrain);
      client.res.on('close', onClose);
    });
  }
}

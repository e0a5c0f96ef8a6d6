import type pg from 'pg';
import type { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';

/**
 * What the two readers of a pgoutput slot share — logical capture of the store (logical-reader.ts) and a
 * PostgreSQL source (postgres/postgres-reader.ts): log positions, how the stream is opened so that values arrive
 * as PostgreSQL's own text, the chunk bounds of a large transaction, and the slot's keepalive while one is promoted.
 */

/** The prefix of the logical messages a backfill of a logical capture writes its rows in (backfill.ts). */
export const BACKFILL_PREFIX = 'rowcast.backfill';
/** Changes of one open transaction held in memory: past that they are staged, chunk by chunk. */
export const CHUNK_ROWS = 5000;
/** Characters of rows held per transaction (and pending) before they are written: a parameter stays far below 1 GB. */
export const CHUNK_BYTES = 16 * 1024 * 1024;
/**
 * While a large transaction is promoted the stream is not read: the slot hears from the reader this often, so
 * that the server does not take it for dead (wal_sender_timeout, 60 s by default).
 */
const KEEPALIVE_MS = 10_000;
const RAW = (text: unknown) => text;

export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export function lsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * Whether a transaction whose BEGIN carries `commitLsn` was written before a restart: its commit record starts at
 * or after the end of every earlier one, so one that starts before the written position was (checked again at its
 * commit).
 */
export function writtenBefore(commitLsn: string, written: bigint): boolean {
  return lsnValue(commitLsn) > 0n && lsnValue(commitLsn) < written;
}

/**
 * The pgoutput plugin with values left as PostgreSQL's own text: the library would parse them with pg's
 * JavaScript type parsers (a timestamp loses its microseconds), so each relation's parsers are replaced as soon as
 * it is parsed, before any of its rows. `received` is called for every message as it comes off the socket.
 */
export async function textPlugin(
  publication: string,
  messages: boolean,
  received?: () => void,
): Promise<PgoutputPlugin> {
  const { PgoutputPlugin } = await replicationLibrary();
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication], messages });
  const parse = plugin.parse.bind(plugin);
  plugin.parse = (buffer: Buffer) => {
    received?.();
    const message = parse(buffer);
    if (message.tag === 'relation') for (const column of message.columns) column.parser = RAW;
    return message;
  };
  return plugin;
}

/**
 * A replication connection: dates in ISO form whatever the server's default and every float digit, so that the
 * text read back is unambiguous; acknowledged by hand (only what was written), with flow control (the stream
 * waits while a handler does).
 */
export async function replicationService(connection: pg.ClientConfig): Promise<LogicalReplicationService> {
  const { LogicalReplicationService } = await replicationLibrary();
  return new LogicalReplicationService(
    { ...connection, options: '-c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3' },
    { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
  );
}

/** Loaded by the first stream a process opens: one that streams no slot does not hold the library. */
function replicationLibrary(): Promise<typeof import('pg-logical-replication')> {
  return import('pg-logical-replication');
}

/** Whether the server decodes logical messages in pgoutput (PostgreSQL 14+): backfills' rows arrive as those. */
export async function decodesMessages(client: pg.Pool | pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(rows[0]!.v) >= 140000;
}

/**
 * While a staged transaction is promoted the stream is not read: tells the slot the confirmed position every
 * KEEPALIVE_MS so that the server does not take the reader for dead (wal_sender_timeout). Returns the stopper.
 */
export function keepSlotAlive(service: LogicalReplicationService | null, confirmed: () => bigint): () => void {
  const timer = setInterval(() => void service?.acknowledge(lsnText(confirmed())).catch(() => {}), KEEPALIVE_MS);
  return () => clearInterval(timer);
}

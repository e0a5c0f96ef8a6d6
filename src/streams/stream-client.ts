import type { ServerResponse } from 'node:http';
import { renderMessage } from '../model/message-format.js';
import type { OutboundMessage } from '../model/sink.js';

// What one client of a topic stream gets on the wire (SSE events, its socket's backpressure, Last-Event-ID), apart
// from the hub's watermark and polling in topic-stream.ts.

const MAX_BIGINT = 2n ** 63n - 1n;

/** A message as the stream reads it from rowcast.messages. */
export interface MessageRow {
  seq: string;
  id: string;
  topic: string;
  subject: string | null;
  body: string;
  content_type: string;
  attributes: Record<string, string>;
  created_at: string;
  trace: string | null;
}

/** One SSE event; data that spans lines (a stored JSON body may) goes as several data: lines, which clients join with "\n". */
export function sseEvent(id: string, data: string): string {
  return `id: ${id}\nevent: message\ndata: ${data.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`;
}

/** A stored message as the SSE event a client gets: its seq as the id, the envelope as the data. */
export function toEvent(row: MessageRow): string {
  const message: OutboundMessage = {
    id: row.id,
    topic: row.topic,
    subject: row.subject,
    body: row.body,
    contentType: row.content_type,
    attributes: row.attributes,
    timestamp: row.created_at,
    trace: row.trace,
  };
  return sseEvent(row.seq, renderMessage('envelope', message).body);
}

/** One connected client: where it is in the topic, and its socket. */
export class StreamClient {
  /** The last seq this client has (been sent, or started after). */
  cursor = 0n;
  state: 'pending' | 'catching-up' | 'live' = 'pending';
  closed = false;

  constructor(
    readonly res: ServerResponse,
    /** Last-Event-ID, or for a stream that starts now the sequence's position when it was requested. */
    readonly from: bigint,
  ) {}

  /** False if the client is gone or was disconnected for falling behind. */
  write(chunk: string, maxBuffered: number): boolean {
    if (this.closed) return false;
    this.res.write(chunk);
    if (this.res.writableLength > maxBuffered) {
      this.drop();
      return false;
    }
    return true;
  }

  /** Cuts the connection at once (buffered data is discarded); the client resumes with its last complete event's id. */
  drop(): void {
    this.closed = true;
    this.res.destroy();
  }

  end(): void {
    this.closed = true;
    this.res.end();
  }
}

/** Parses Last-Event-ID: digits within bigint, or null when absent; undefined when malformed. */
export function parseLastEventId(value: string | string[] | undefined): bigint | null | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return null;
  if (!/^\d{1,19}$/.test(v.trim())) return undefined;
  const n = BigInt(v.trim());
  return n <= MAX_BIGINT ? n : undefined;
}

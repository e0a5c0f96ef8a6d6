import type { Socket } from 'node:net';

/**
 * The channel between a runtime process and rowcast's own Python bootstrap: the Runtime API's exchanges (next event,
 * response, error, init error) as frames on a socket pair, the process's file descriptor 3, instead of HTTP on a
 * loopback port. Same exchanges, same checks (runtime-process.ts handles both); no request or response heads to
 * write and parse, and a response goes with the bootstrap's next request in one write, unanswered. Runtimes of
 * `provided` functions, and anything else in the process, still have the HTTP Runtime API.
 *
 * A frame is a header, one line of JSON, then as many bytes of body as its `length` says (none without one).
 *   bootstrap → rowcast: {"op":"next"}, {"op":"response","id":…,"length":n}, {"op":"error","id":…,"errorType":…,"length":n},
 *                        {"op":"init-error","errorType":…,"length":n} (answered {"status":…}, so that it is read before the process exits)
 *   rowcast → bootstrap: {"headers":{…the Runtime API's lambda-runtime-* headers…},"length":n} and the event
 */

/** The variable naming the channel's file descriptor in the bootstrap's environment (which it removes). */
export const CHANNEL_FD_VARIABLE = '_ROWCAST_RUNTIME_FD';
export const CHANNEL_FD = 3;
/** A header longer than this is a broken channel. */
const MAX_HEADER_BYTES = 64 * 1024;

export interface ChannelFrame {
  header: Record<string, unknown>;
  /** Null when the body was over the reader's limit (it was read and dropped). */
  body: Buffer | null;
}

/** Reads frames off the socket; a malformed one ends the reading and is reported once. */
export class FrameReader {
  /** Bytes received and not yet read, in order (joined only when a header is looked for or a body is complete). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The frame whose body is being read. */
  private frame: { header: Record<string, unknown>; length: number; drop: boolean } | null = null;
  private broken = false;

  constructor(
    private readonly maxBody: number,
    private readonly onFrame: (frame: ChannelFrame) => void,
    private readonly onBroken: (why: string) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.broken) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    for (;;) {
      if (!this.frame) {
        const bytes = this.joined();
        const end = bytes.indexOf(10);
        if (end < 0) {
          if (bytes.length > MAX_HEADER_BYTES) this.fail('a frame header over 64 KiB');
          return;
        }
        let header: unknown;
        try {
          header = JSON.parse(bytes.subarray(0, end).toString('utf8'));
        } catch {
          return this.fail('a frame header that is not JSON');
        }
        if (typeof header !== 'object' || header === null || Array.isArray(header))
          return this.fail('a frame header that is not a JSON object');
        const length = (header as { length?: unknown }).length ?? 0;
        if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0)
          return this.fail('a frame header whose length is not a byte count');
        this.take(end + 1);
        this.frame = { header: header as Record<string, unknown>, length, drop: length > this.maxBody };
      }
      const frame = this.frame;
      if (frame.drop) {
        const skip = Math.min(frame.length, this.pendingBytes);
        this.take(skip);
        frame.length -= skip;
        if (frame.length) return;
        this.frame = null;
        this.onFrame({ header: frame.header, body: null });
        continue;
      }
      if (this.pendingBytes < frame.length) return;
      const body = Buffer.from(this.take(frame.length));
      this.frame = null;
      this.onFrame({ header: frame.header, body });
    }
  }

  /** The pending bytes as one buffer. */
  private joined(): Buffer {
    if (this.pending.length !== 1) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
    return this.pending[0]!;
  }

  /** Removes the first n pending bytes and returns them (a view, valid until more are taken). */
  private take(n: number): Buffer {
    if (n === this.pendingBytes) {
      const all = this.joined();
      this.pending = [];
      this.pendingBytes = 0;
      return all;
    }
    const bytes = this.joined();
    this.pending = [bytes.subarray(n)];
    this.pendingBytes -= n;
    return bytes.subarray(0, n);
  }

  private fail(why: string): void {
    this.broken = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.onBroken(why);
  }
}

/** Writes one frame: the header and, if given, the body with its length. */
export function writeFrame(socket: Socket, header: Record<string, unknown>, body?: string): void {
  if (body === undefined) socket.write(`${JSON.stringify(header)}\n`);
  else socket.write(`${JSON.stringify({ ...header, length: Buffer.byteLength(body) })}\n${body}`);
}

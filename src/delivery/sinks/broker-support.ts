import { createHash } from 'node:crypto';
import type { OptionsResult } from '../../config/sink-settings/settings-support.js';
import type { SendOutcome } from '../../model/sink.js';

/**
 * What the broker sinks (nats, amqp, redis, mqtt) have in common on the sending side: a send's options resolved,
 * a send bounded by its timeout, shared connections kept. The protocol itself stays in each sink. The options side
 * (validation, templates, secrets, URLs) is config/sink-settings/settings-support.ts, which sinks import directly.
 */

// ---- sending ----

export const retry = (error: string): SendOutcome => ({ kind: 'retry', error });
export const dead = (error: string): SendOutcome => ({ kind: 'dead', error });

export type SendOptions<O, R> = { ok: true; options: O; resolved: R } | { ok: false; outcome: SendOutcome };

/**
 * A send's options and what `resolve` reads with them (secrets and URLs from the environment, on every send, so a
 * changed variable counts). Invalid options, or an unset variable, make the delivery dead: no retry would fix them.
 */
export function sendOptions<O, R>(
  protocol: string,
  parsed: OptionsResult<O>,
  resolve: (options: O) => R,
): SendOptions<O, R> {
  if (!parsed.ok) return { ok: false, outcome: dead(parsed.error) };
  try {
    return { ok: true, options: parsed.options, resolved: resolve(parsed.options) };
  } catch (err) {
    return { ok: false, outcome: dead(`invalid ${protocol} options: ${(err as Error).message}`) };
  }
}

/** Settles with the promise, or rejects as soon as the signal aborts (the promise's own outcome is then ignored). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

// ---- connections ----

/** A key for connection settings: a hash, so that no secret is kept in it. */
export function connectionKey(settings: unknown): string {
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

/**
 * The one opening (or open) value per key: concurrent callers share it. `open` gets `forget`, to call once the value
 * is gone (a connection closed); one that fails to open is forgotten too. The next call then opens a new one.
 */
export function openShared<T>(
  opened: Map<string, Promise<T>>,
  key: string,
  open: (forget: () => void) => Promise<T>,
): Promise<T> {
  const existing = opened.get(key);
  if (existing) return existing;
  // eslint-disable-next-line prefer-const -- forget (made before it) must see it; a const would be read before it is set
  let opening: Promise<T> | undefined;
  const forget = () => {
    if (opened.get(key) === opening) opened.delete(key);
  };
  opening = open(forget);
  opened.set(key, opening);
  opening.catch(forget);
  return opening;
}

/**
 * A sink's connections, opened on first use and shared by every subscription with the same settings. Nothing
 * reconnects behind rowcast's back: a lost connection is forgotten and the next send opens a new one.
 */
export class SharedConnections<C> {
  private readonly opened = new Map<string, Promise<C>>();
  /** Set by close(): sends stop, and a connection that finishes opening afterwards is closed by its sink. */
  closed = false;

  constructor(
    private readonly protocol: string,
    private readonly end: (connection: C) => Promise<unknown>,
  ) {}

  /**
   * One send within timeoutMs: connect (open or reuse a connection), then publish on it, each step awaited with
   * untilAborted(…, deadline) so that it is given up when the time is over or rowcast shuts down. A shutdown is a
   * retry; any other failure a retry with the error `failed` describes, given the connection if it was open by then.
   */
  async send(
    timeoutMs: number,
    signal: AbortSignal,
    connect: () => Promise<C>,
    publish: (connection: C, deadline: AbortSignal) => Promise<SendOutcome>,
    failed: (err: unknown, timedOut: boolean, connection: C | undefined) => string,
  ): Promise<SendOutcome> {
    if (this.closed) return retry(`aborted: the ${this.protocol} sink is closed`);
    const timeout = AbortSignal.timeout(timeoutMs);
    const deadline = AbortSignal.any([signal, timeout]);
    let connection: C | undefined;
    try {
      connection = await untilAborted(connect(), deadline);
      return await publish(connection, deadline);
    } catch (err) {
      if (signal.aborted) return retry('aborted: rowcast is shutting down');
      return retry(failed(err, timeout.aborted, connection));
    }
  }

  get(key: string, open: (forget: () => void) => Promise<C>): Promise<C> {
    return openShared(this.opened, key, open);
  }

  async close(): Promise<void> {
    this.closed = true;
    const opening = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(
      opening.map(async (connection) => {
        try {
          await this.end(await connection);
        } catch {
          // It never opened, or it is already closed.
        }
      }),
    );
  }
}

import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { SendOutcome } from '../../model/sink.js';

/**
 * What the broker sinks (nats, amqp, redis, mqtt) have in common: how their `options` are validated and read, and
 * how a send is bounded by its timeout and shared connections are kept. The protocol itself stays in each sink.
 */

// ---- options ----

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `{ env: "NAME" }`: a value read from the environment when rowcast connects, so the config need not hold it. */
export function envRef(example: string) {
  return z.strictObject({ env: z.string().regex(ENV_NAME, `an environment variable name, e.g. "${example}"`) });
}

/** A secret written inline, or `{ env: "NAME" }` to read it from the environment when rowcast connects. */
export function secretRef(example: string) {
  return z.union([z.string().min(1, 'must not be empty'), envRef(example)], {
    error: 'write the value, or { env: "VARIABLE" } to read it from an environment variable',
  });
}
export type SecretRef = z.output<ReturnType<typeof secretRef>>;

/** Names of streams, subjects, topics and routing keys may hold `{topic}` (the rowcast topic name), and no other placeholder. */
export function topicTemplate(base: z.ZodString): z.ZodString {
  return base.refine((s) => !/\{(?!topic\})[^}]*\}/.test(s), { message: 'the only placeholder is {topic}' });
}

/** The name for one message: `{topic}` replaced by its topic. */
export function renderTemplate(template: string, topic: string): string {
  return template.replaceAll('{topic}', topic);
}

export type OptionsResult<T> = { ok: true; options: T } | { ok: false; error: string };

/**
 * The validator of a protocol's `options`. Results are remembered per options object, as every send of a
 * subscription passes the same one. The error names each offending option ("options.subject: …"); `check` adds a
 * rule the schema does not have (the config loader uses the schema alone).
 */
export function optionsParser<S extends z.ZodObject>(
  protocol: string,
  schema: S,
  check?: (options: z.output<S>) => string | undefined,
): (input: unknown) => OptionsResult<z.output<S>> {
  const parsed = new WeakMap<object, OptionsResult<z.output<S>>>();
  const known = Object.keys(schema.shape).join(', ');
  return (input) => {
    const key = typeof input === 'object' && input !== null ? input : null;
    const cached = key && parsed.get(key);
    if (cached) return cached;
    const result = schema.safeParse(input ?? {});
    let outcome: OptionsResult<z.output<S>>;
    if (!result.success) {
      outcome = { ok: false, error: `invalid ${protocol} options: ${result.error.issues.map((issue) => describeIssue(issue, known)).join('; ')}` };
    } else {
      const problem = check?.(result.data);
      outcome = problem ? { ok: false, error: `invalid ${protocol} options: ${problem}` } : { ok: true, options: result.data };
    }
    if (key) parsed.set(key, outcome);
    return outcome;
  };
}

function describeIssue(issue: z.core.$ZodIssue, known: string): string {
  const where = ['options', ...issue.path.map(String)].join('.');
  if (issue.code === 'unrecognized_keys') {
    const options = issue.path.length === 0 ? ` (known: ${known})` : '';
    return `${where}: unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}${options}`;
  }
  return `${where}: ${issue.message.replace(/^Invalid input: /, '')}`;
}

/** Reads a secret; throws an error naming the option (never the value) when its environment variable is unset. */
export function resolveSecret(ref: SecretRef, option: string): string {
  if (typeof ref === 'string') return ref;
  const value = process.env[ref.env];
  if (!value) throw new Error(`${option}: environment variable ${ref.env} is not set`);
  return value;
}

/**
 * The broker URL of `options.url`, read from the environment when it is { env }. The schema only sees the variable's
 * name, so its value is checked here (`accepts`, and that it parses); errors name the option, never the value.
 */
export function resolveUrl(url: string | { env: string }, accepts: RegExp, expected: string): string {
  if (typeof url === 'string') return url;
  const value = resolveSecret(url, 'options.url');
  if (!accepts.test(value) || !URL.canParse(value)) throw new Error(`options.url: environment variable ${url.env} is not ${expected}`);
  return value;
}

/** The decoded password of a URL; '' when it has none (or does not parse). */
export function urlPassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/** Removes a secret from a message, should a library have put it there; one shorter than minLength is left alone. */
export function scrubSecret(text: string, secret: string | undefined, minLength: number): string {
  return secret && secret.length >= minLength ? text.replaceAll(secret, '***') : text;
}

// ---- sending ----

export const retry = (error: string): SendOutcome => ({ kind: 'retry', error });
export const dead = (error: string): SendOutcome => ({ kind: 'dead', error });

export type SendOptions<O, R> = { ok: true; options: O; resolved: R } | { ok: false; outcome: SendOutcome };

/**
 * A send's options and what `resolve` reads with them (secrets and URLs from the environment, on every send, so a
 * changed variable counts). Invalid options, or an unset variable, make the delivery dead: no retry would fix them.
 */
export function sendOptions<O, R>(protocol: string, parsed: OptionsResult<O>, resolve: (options: O) => R): SendOptions<O, R> {
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
export function openShared<T>(opened: Map<string, Promise<T>>, key: string, open: (forget: () => void) => Promise<T>): Promise<T> {
  const existing = opened.get(key);
  if (existing) return existing;
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

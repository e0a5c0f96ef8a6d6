import { z } from 'zod';

/**
 * How the broker sinks' `options` (nats, amqp, redis, mqtt) are written and read: the schema helpers the config
 * validates with, and the readers of values kept in the environment. The sending side is delivery/sinks/broker-support.ts.
 */

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
      outcome = {
        ok: false,
        error: `invalid ${protocol} options: ${result.error.issues.map((issue) => describeIssue(issue, known)).join('; ')}`,
      };
    } else {
      const problem = check?.(result.data);
      outcome = problem
        ? { ok: false, error: `invalid ${protocol} options: ${problem}` }
        : { ok: true, options: result.data };
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
  if (!accepts.test(value) || !URL.canParse(value))
    throw new Error(`options.url: environment variable ${url.env} is not ${expected}`);
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

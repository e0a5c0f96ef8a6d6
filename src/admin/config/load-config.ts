import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import type { z } from 'zod';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { resolveProcessRuntime, runtimeKind } from '../../config/runtime-kind.js';
import { editDistance, validateFilterPolicy } from '../../model/filter-policy/filter-policy.js';
import { configSchema, type RowcastConfig, type RowcastConfigInput } from '../../config/schema.js';

export const CONFIG_FILE_NAMES = [
  'rowcast.config.ts',
  'rowcast.config.mts',
  'rowcast.config.js',
  'rowcast.config.mjs',
  'rowcast.config.json',
  'rowcast.config.yaml',
  'rowcast.config.yml',
];

/** Finds the config file: the given path, or the first rowcast.config.* in the directory. */
export function findConfigFile(explicit?: string, cwd = process.cwd()): string {
  if (explicit) {
    const file = path.resolve(cwd, explicit);
    if (!existsSync(file))
      throw new RowcastError(
        ErrorCodes.CONFIG_NOT_FOUND,
        `Config file ${file} does not exist; check the --config path.`,
      );
    return file;
  }
  for (const name of CONFIG_FILE_NAMES) {
    const file = path.join(cwd, name);
    if (existsSync(file)) return file;
  }
  throw new RowcastError(
    ErrorCodes.CONFIG_NOT_FOUND,
    `No config file in ${cwd}: create one of ${CONFIG_FILE_NAMES.join(', ')}, or pass --config <file>.`,
  );
}

/** Reads a config file of any supported kind, without validating it. */
export async function readConfigFile(file: string): Promise<unknown> {
  const ext = path.extname(file);
  if (ext === '.json') return parseText(file, () => JSON.parse(readFileSync(file, 'utf8')));
  if (ext === '.yaml' || ext === '.yml') return parseText(file, () => YAML.parse(readFileSync(file, 'utf8')));
  if (ext === '.ts' || ext === '.mts') {
    // TypeScript configs are compiled on the fly by tsx, so users need no build step for them.
    const { tsImport } = await import('tsx/esm/api');
    const mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
    return mod.default;
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  return mod.default;
}

function parseText(file: string, parse: () => unknown): unknown {
  try {
    return parse();
  } catch (err) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `Config file ${file} is not valid ${path.extname(file).slice(1).toUpperCase()}: ${(err as Error).message}`,
    );
  }
}

/**
 * Validates a config object: shapes, types, unknown keys, and that every name it refers to exists. Handler paths
 * are resolved against baseDir (the config file's folder).
 */
export function parseConfig(input: unknown, source = 'config', baseDir = process.cwd()): RowcastConfig {
  if (input === undefined || input === null) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `${source} is empty: export default defineConfig({ topics, captures, subscriptions }).`,
    );
  }
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `${source} is invalid:`,
      result.error.issues.map((issue) => describeIssue(issue, input)),
    );
  }
  const config = result.data;
  const problems: string[] = [];
  const topics = Object.keys(config.topics);
  const knownTopics = topics.length ? `known topics: ${topics.join(', ')}` : 'no topics are declared';
  const functions = Object.keys(config.functions);
  const knownFunctions = functions.length ? `known functions: ${functions.join(', ')}` : 'no functions are declared';
  const checkTopic = (where: string, topic: string) => {
    if (!config.topics[topic])
      problems.push(`${where}: unknown topic "${topic}"; declare it under topics (${knownTopics}).`);
  };
  const checkFunction = (where: string, fn: string) => {
    if (!config.functions[fn])
      problems.push(`${where}: unknown function "${fn}"; declare it under functions (${knownFunctions}).`);
  };
  for (const [name, capture] of Object.entries(config.captures)) {
    if ((capture.topic === undefined) === (capture.function === undefined)) {
      problems.push(`captures.${name}: give exactly one target, either topic or function.`);
    }
    if (capture.topic !== undefined) checkTopic(`captures.${name}.topic`, capture.topic);
    if (capture.function !== undefined) checkFunction(`captures.${name}.function`, capture.function);
    if (capture.payload === 'keys' && capture.columns) {
      problems.push(
        `captures.${name}.columns: a "keys" payload carries the primary key only; remove columns or use payload "row" or "diff".`,
      );
    }
    if (typeof capture.when === 'object') {
      for (const op of Object.keys(capture.when)) {
        if (!capture.operations.includes(op.toUpperCase() as never)) {
          problems.push(
            `captures.${name}.when.${op}: ${op.toUpperCase()} is not in operations [${capture.operations.join(', ')}]; add it there or remove this condition.`,
          );
        }
      }
    }
  }
  for (const [name, sub] of Object.entries(config.subscriptions)) {
    checkTopic(`subscriptions.${name}.topic`, sub.topic);
    if (sub.deadLetter) {
      checkTopic(`subscriptions.${name}.deadLetter.topic`, sub.deadLetter.topic);
      if (sub.deadLetter.topic === sub.topic)
        problems.push(
          `subscriptions.${name}.deadLetter.topic: the dead letters of a subscription cannot go to its own topic; name another topic.`,
        );
    }
    if (sub.filterPolicy) {
      for (const problem of validateFilterPolicy(sub.filterPolicy, sub.filterPolicyScope))
        problems.push(`subscriptions.${name}.filterPolicy: ${problem}`);
    }
    if (sub.protocol === 'function') checkFunction(`subscriptions.${name}.function`, sub.function);
    const webhook = sub.protocol === 'http' || sub.protocol === 'https';
    if (sub.format === 'sns' && !webhook && sub.protocol !== 'email' && sub.protocol !== 'email-json') {
      problems.push(
        `subscriptions.${name}.format: "sns" is what SNS sends to http, https, email and email-json subscribers; use "envelope", "raw" or "cloudevents" for ${sub.protocol}.`,
      );
    }
    if (webhook && sub.format !== 'sns' && (sub.rawMessageDelivery || sub.confirmation === 'required')) {
      problems.push(
        `subscriptions.${name}: ${sub.rawMessageDelivery ? 'rawMessageDelivery' : 'confirmation'} belongs to SNS's envelope; set format: "sns" or remove it${sub.rawMessageDelivery ? ' (format "raw" sends the body alone)' : ''}.`,
      );
    }
    if (sub.deliveryPolicy.minDelay > sub.deliveryPolicy.maxDelay) {
      problems.push(
        `subscriptions.${name}.deliveryPolicy.minDelay: ${sub.deliveryPolicy.minDelay} ms is more than maxDelay (${sub.deliveryPolicy.maxDelay} ms); lower minDelay or raise maxDelay.`,
      );
    }
    if (
      (sub.protocol === 'http' || sub.protocol === 'https') &&
      typeof sub.secret === 'object' &&
      process.env[sub.secret.env] === undefined
    ) {
      problems.push(
        `subscriptions.${name}.secret.env: environment variable ${sub.secret.env} is not set; set it to the signing secret ("whsec_…").`,
      );
    }
  }
  for (const [name, fn] of Object.entries(config.functions)) {
    if (runtimeKind(fn.runtime) !== 'nodejs') {
      problems.push(...resolveProcessRuntime(name, fn, baseDir));
    } else {
      if (fn.directory !== undefined || fn.bootstrap !== undefined)
        problems.push(
          `functions.${name}: directory and bootstrap are for runtimes "python3" and "provided"; remove them, or set runtime.`,
        );
      const [file, exportName = 'handler'] = fn.handler.split('#') as [string, string?];
      const resolved = path.resolve(baseDir, file);
      if (!existsSync(resolved))
        problems.push(
          `functions.${name}.handler: ${resolved} does not exist; give the handler module's path relative to the config file.`,
        );
      fn.handler = `${resolved}#${exportName}`;
    }
    if (fn.minDelay > fn.maxDelay)
      problems.push(
        `functions.${name}.minDelay: ${fn.minDelay} ms is more than maxDelay (${fn.maxDelay} ms); lower minDelay or raise maxDelay.`,
      );
    if (fn.onFailure) checkTopic(`functions.${name}.onFailure.topic`, fn.onFailure.topic);
  }
  if (problems.length) throw new RowcastError(ErrorCodes.CONFIG_INVALID, `${source} is invalid:`, problems);
  return config;
}

/** Finds, reads and validates the config. */
export async function loadConfig(options: { file?: string; cwd?: string } = {}): Promise<RowcastConfig> {
  const file = findConfigFile(options.file, options.cwd);
  return parseConfig(
    await readConfigFile(file),
    path.relative(options.cwd ?? process.cwd(), file) || file,
    path.dirname(file),
  );
}

export type { RowcastConfigInput };

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  // zod says "expected string, received undefined" or gives the field's own message; a user needs "required".
  const missing = issue.path.length > 0 && valueAt(input, issue.path) === undefined ? 'required: ' : '';
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(configSchema, issue.path.slice());
      const near = issue.keys.length === 1 ? closest(issue.keys[0]!, known) : undefined;
      return `${where === '(top level)' ? '' : where + ': '}unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; remove ${issue.keys.length > 1 ? 'them' : 'it'} or check the spelling${near ? `: did you mean "${near}"?` : ''} (see docs/configuration.md).`;
    }
    case 'invalid_union':
      // A discriminated union (a subscription's protocol): name the choices, not zod's wording.
      if ('discriminator' in issue && 'options' in issue && Array.isArray(issue.options)) {
        const options = issue.options.map(String);
        const value = valueAt(input, issue.path);
        if (value === undefined) return `${where}: required: one of ${options.join(', ')}.`;
        const near = typeof value === 'string' ? closest(value, options) : undefined;
        return `${where}: unknown ${String(issue.discriminator)} ${JSON.stringify(value)}${near ? ` (did you mean "${near}"?)` : ''}; use one of ${options.join(', ')}.`;
      }
      return `${where}: ${missing}${issue.message}.`;
    case 'invalid_value':
      return `${where}: ${missing}${issue.message.replace(/^Invalid option: /, '')}.`;
    case 'invalid_type':
      return `${where}: ${missing}${issue.message.replace(/^Invalid input: /, '')}.`;
    case 'invalid_key':
      // A name (record key) that does not match its pattern: say which one and what names may contain.
      return `${where}: ${JSON.stringify(String(issue.path.at(-1)))} is not a valid name; ${issue.issues.map((i) => i.message).join('; ')}.`;
    default:
      return `${where}: ${missing}${issue.message}.`;
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** The closest of the candidates, if it is a typo away (two edits at most, fewer for short words) rather than another word. */
function closest(word: string, candidates: Iterable<string>): string | undefined {
  const most = Math.min(2, Math.floor(word.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (distance <= most && distance < (best?.distance ?? Infinity)) best = { name, distance };
  }
  return best?.name;
}

/** The keys the schema allows in the object at `path` (of every union member that could be there). */
function keysAt(schema: z.core.$ZodType, path: PropertyKey[]): Set<string> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- zod's internal definition has no public type
  const def = schema._zod.def as unknown as Record<string, any>;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return keysAt(def.innerType, path);
    case 'pipe':
      return keysAt(def.in, path);
    case 'union':
      return new Set((def.options as z.core.$ZodType[]).flatMap((o) => [...keysAt(o, path)]));
    case 'record':
      return path.length ? keysAt(def.valueType, path.slice(1)) : new Set();
    case 'array':
      return path.length ? keysAt(def.element, path.slice(1)) : new Set();
    case 'object': {
      if (!path.length) return new Set(Object.keys(def.shape));
      const next = def.shape[path[0] as string];
      return next ? keysAt(next, path.slice(1)) : new Set();
    }
    default:
      return new Set();
  }
}

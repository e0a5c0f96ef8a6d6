import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generateSecret } from '../../src/admin/config/apply.js';
import { parseDuration } from '../../src/config/duration.js';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfig } from '../../src/config/schema.js';
import { ErrorCodes, RowcastError } from '../../src/model/errors.js';

const ENDPOINT = 'https://example.com/hooks/rowcast';
const UNSET_ENV = `ROWCAST_TEST_UNSET_${randomBytes(6).toString('hex').toUpperCase()}`;

/** The HTTP subscription `name` of a parsed config. */
function httpSub(config: RowcastConfig, name = 'hook') {
  const sub = config.subscriptions[name];
  if (!sub || !('endpoint' in sub)) assert.fail(`subscription ${name} is an HTTP subscription`);
  return sub;
}

/** A valid config with one capture and one subscription; `patch` edits a copy. */
function valid(patch: (c: any) => void = () => {}): any {
  const config: any = {
    topics: { orders: { description: 'order changes' } },
    captures: { orders: { table: 'public.orders', topic: 'orders' } },
    subscriptions: { hook: { topic: 'orders', protocol: 'https', endpoint: ENDPOINT } },
  };
  patch(config);
  return config;
}

/** The problems parseConfig reports for input; fails if it accepts it. */
function problemsOf(input: unknown): string[] {
  try {
    parseConfig(input, 'rowcast.config.ts');
  } catch (err) {
    assert.ok(err instanceof RowcastError, `a RowcastError, not ${String(err)}`);
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
    assert.ok(err.message.startsWith('rowcast.config.ts is invalid:'), err.message);
    for (const p of err.problems) assert.ok(err.message.includes(`  - ${p}`), 'every problem is in the message');
    return [...err.problems];
  }
  assert.fail(`parseConfig accepted ${JSON.stringify(input)}`);
}

/** Exactly one problem, at `path`, that says how to fix it (`fix`). */
function assertOneProblem(input: unknown, path: string, fix: RegExp): string {
  const problems = problemsOf(input);
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.ok(problems[0]!.startsWith(`${path}: `), `"${problems[0]}" starts with "${path}: "`);
  assert.match(problems[0]!, fix);
  return problems[0]!;
}

describe('parseConfig: unknown keys', () => {
  test('at the top level', () => {
    const [p] = problemsOf(valid((c) => (c.topicz = {})));
    assert.equal(
      p,
      'unknown key "topicz"; remove it or check the spelling: did you mean "topics"? (see docs/configuration.md).',
    );
  });

  test('in a capture, a subscription, a delivery policy, a table reference and runtime, each with its path', () => {
    assertOneProblem(
      valid((c) => (c.captures.orders.paylod = 'row')),
      'captures.orders',
      /unknown key "paylod"; remove it or check the spelling/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.retries = 3)),
      'subscriptions.hook',
      /unknown key "retries"; remove it/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.deliveryPolicy = { maxAttempt: 3 })),
      'subscriptions.hook.deliveryPolicy',
      /unknown key "maxAttempt"/,
    );
    assertOneProblem(
      valid((c) => (c.captures.orders.table = { schema: 'public', name: 'orders', db: 'x' })),
      'captures.orders.table',
      /unknown key "db"/,
    );
    assertOneProblem(
      valid((c) => (c.captures.orders.when = { upsert: 'true' })),
      'captures.orders.when',
      /unknown key "upsert"/,
    );
    assertOneProblem(
      valid((c) => (c.runtime = { poll: '1s' })),
      'runtime',
      /unknown key "poll"/,
    );
    assertOneProblem(
      valid((c) => (c.topics.orders.name = 'x')),
      'topics.orders',
      /unknown key "name"/,
    );
  });

  test('a misspelt key: "did you mean" names the key of that object', () => {
    assertOneProblem(
      valid((c) => (c.captures.orders.paylod = 'row')),
      'captures.orders',
      /^captures\.orders: unknown key "paylod"; remove it or check the spelling: did you mean "payload"\?/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.deliveryPolicy = { maxAttempt: 3 })),
      'subscriptions.hook.deliveryPolicy',
      /unknown key "maxAttempt"; .*did you mean "maxAttempts"\?/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.filterPolicyScop = 'MessageBody')),
      'subscriptions.hook',
      /did you mean "filterPolicyScope"\?/,
    );
    assertOneProblem(
      valid((c) => (c.runtime = { pollInterva: '1s' })),
      'runtime',
      /did you mean "pollInterval"\?/,
    );
    const far = assertOneProblem(
      valid((c) => (c.subscriptions.hook.retries = 3)),
      'subscriptions.hook',
      /unknown key "retries"; remove it/,
    );
    assert.doesNotMatch(far, /did you mean/, 'no guess when nothing is close');
  });

  test('a missing required key says "required"', () => {
    assertOneProblem(
      valid((c) => delete c.subscriptions.hook.endpoint),
      'subscriptions.hook.endpoint',
      /^subscriptions\.hook\.endpoint: required: an absolute http:\/\/ or https:\/\/ URL/,
    );
    assertOneProblem(
      valid((c) => delete c.captures.orders.table),
      'captures.orders.table',
      /^captures\.orders\.table: required: write the table as/,
    );
    assertOneProblem(
      valid((c) => delete c.subscriptions.hook.topic),
      'subscriptions.hook.topic',
      /^subscriptions\.hook\.topic: required/,
    );
  });

  test("an unknown or missing protocol names the protocols, without zod's wording", () => {
    const p = assertOneProblem(
      valid((c) => (c.subscriptions.hook.protocol = 'smtp')),
      'subscriptions.hook.protocol',
      /^subscriptions\.hook\.protocol: unknown protocol "smtp"; use one of http, https, function, email, email-json, nats, amqp, redis, mqtt, log\.$/,
    );
    assert.doesNotMatch(p, /discriminator|Invalid/);
    assertOneProblem(
      valid((c) => delete c.subscriptions.hook.protocol),
      'subscriptions.hook.protocol',
      /^subscriptions\.hook\.protocol: required: one of http, https, function,/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.protocol = 'htps')),
      'subscriptions.hook.protocol',
      /unknown protocol "htps" \(did you mean "https"\?\)/,
    );
  });

  test('several unknown keys in one object are named together', () => {
    assertOneProblem(
      valid((c) => Object.assign(c.captures.orders, { a: 1, b: 2 })),
      'captures.orders',
      /unknown keys "a", "b"; remove them/,
    );
  });
});

describe('parseConfig: types and values', () => {
  test('bad types name the path and the expected type', () => {
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.deliveryPolicy = { maxAttempts: 'many' })),
      'subscriptions.hook.deliveryPolicy.maxAttempts',
      /expected number, received string/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.maxConcurrency = 2.5)),
      'subscriptions.hook.maxConcurrency',
      /int/i,
    );
    assertOneProblem(
      valid((c) => (c.captures.orders.columns = 'name')),
      'captures.orders.columns',
      /expected array, received string/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.headers = { 'x-api-key': 42 })),
      'subscriptions.hook.headers.x-api-key',
      /expected string, received number/,
    );
    assertOneProblem(
      valid((c) => (c.topics = ['orders'])),
      'topics',
      /expected record, received array/,
    );
    assertOneProblem('topics: {}', '(top level)', /expected object, received string/);
  });

  test('a value of neither form of a union says which forms there are', () => {
    assertOneProblem(
      valid((c) => (c.captures.orders.table = 5)),
      'captures.orders.table',
      /"table", "schema\.table", or \{ schema: "…", name: "…" \}/,
    );
    assertOneProblem(
      valid((c) => (c.captures.orders.when = 5)),
      'captures.orders.when',
      /SQL condition over OLD\/NEW.*\{ insert, update, delete \}/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.secret = 5)),
      'subscriptions.hook.secret',
      /\{ env: "VARIABLE" \}/,
    );
    assertOneProblem(
      valid((c) => (c.runtime = { lease: true })),
      'runtime.lease',
      /write milliseconds \(1500\) or a string like "250ms"/,
    );
  });

  test('bad enum values list the allowed ones', () => {
    assertOneProblem(
      valid((c) => (c.captures.orders.payload = 'full')),
      'captures.orders.payload',
      /expected one of "keys"\|"row"\|"diff"/,
    );
    assertOneProblem(
      valid((c) => (c.captures.orders.operations = ['INSERT', 'UPSERT'])),
      'captures.orders.operations.1',
      /expected one of "INSERT"\|"UPDATE"\|"DELETE"\|"TRUNCATE"/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.protocol = 'smtp')),
      'subscriptions.hook.protocol',
      /one of http, https, function,/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.format = 'xml')),
      'subscriptions.hook.format',
      /expected one of "envelope"\|"raw"/,
    );
    assertOneProblem(
      valid((c) => (c.runtime = { logLevel: 'loud' })),
      'runtime.logLevel',
      /expected one of "fatal"\|"error"\|"warn"/,
    );
  });

  test('names of topics, captures and subscriptions are restricted, and the message says to what', () => {
    assertOneProblem(
      valid((c) => (c.topics['bad topic'] = {})),
      'topics.bad topic',
      /"bad topic" is not a valid name; use 1–256 letters, digits, "-" or "_"/,
    );
    assertOneProblem(
      valid((c) => (c.captures['x'.repeat(41)] = { table: 't', topic: 'orders' })),
      `captures.${'x'.repeat(41)}`,
      /is not a valid name; use 1–40 letters/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions['hook;drop'] = { topic: 'orders', protocol: 'https', endpoint: ENDPOINT })),
      'subscriptions.hook;drop',
      /is not a valid name; use 1–128 letters/,
    );
  });

  test('unknown topics referenced by a capture or a subscription', () => {
    const p = assertOneProblem(
      valid((c) => (c.captures.orders.topic = 'order')),
      'captures.orders.topic',
      /unknown topic "order"; declare it under topics \(known topics: orders\)/,
    );
    assert.ok(p.includes('"order"'));
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.topic = 'nope')),
      'subscriptions.hook.topic',
      /unknown topic "nope"; declare it under topics/,
    );
    assertOneProblem(
      valid((c) => ((c.topics = {}), (c.subscriptions = {}))),
      'captures.orders.topic',
      /no topics are declared/,
    );
  });

  test('endpoints must be absolute http(s) URLs', () => {
    for (const endpoint of [
      'ftp://example.com/x',
      '/hooks/rowcast',
      'hooks/rowcast',
      'not a url',
      'mailto:ops@example.com',
      'file:///etc/passwd',
    ]) {
      assertOneProblem(
        valid((c) => (c.subscriptions.hook.endpoint = endpoint)),
        'subscriptions.hook.endpoint',
        /an absolute http:\/\/ or https:\/\/ URL, e\.g\./,
      );
    }
    for (const endpoint of ['http://127.0.0.1:8080/hook', 'https://example.com/a?b=c']) {
      assert.equal(httpSub(parseConfig(valid((c) => (c.subscriptions.hook.endpoint = endpoint)))).endpoint, endpoint);
    }
  });

  test('durations that are not durations', () => {
    for (const bad of ['5 parsecs', '5', '-1s', '1.5.2s', '']) {
      const p = assertOneProblem(
        valid((c) => (c.subscriptions.hook.deliveryPolicy = { timeout: bad })),
        'subscriptions.hook.deliveryPolicy.timeout',
        /write milliseconds \(1500\) or a string like "250ms", "5s", "2m", "6h", "7d"/,
      );
      assert.ok(p.includes(`not a duration: ${JSON.stringify(bad)}`), p);
    }
    assertOneProblem(
      valid((c) => (c.runtime = { retention: -5 })),
      'runtime.retention',
      /not a duration: -5/,
    );
  });

  test('minDelay more than maxDelay', () => {
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.deliveryPolicy = { minDelay: '2m', maxDelay: '30s' })),
      'subscriptions.hook.deliveryPolicy.minDelay',
      /120000 ms is more than maxDelay \(30000 ms\); lower minDelay or raise maxDelay/,
    );
    // Equal is fine.
    assert.equal(
      httpSub(parseConfig(valid((c) => (c.subscriptions.hook.deliveryPolicy = { minDelay: '30s', maxDelay: 30_000 }))))
        .deliveryPolicy.minDelay,
      30_000,
    );
  });

  test('a secret from an environment variable that is not set', () => {
    assert.equal(process.env[UNSET_ENV], undefined);
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.secret = { env: UNSET_ENV })),
      'subscriptions.hook.secret.env',
      new RegExp(`environment variable ${UNSET_ENV} is not set; set it to the signing secret`),
    );
    process.env[UNSET_ENV] = generateSecret();
    try {
      assert.deepEqual(httpSub(parseConfig(valid((c) => (c.subscriptions.hook.secret = { env: UNSET_ENV })))).secret, {
        env: UNSET_ENV,
      });
    } finally {
      delete process.env[UNSET_ENV];
    }
  });

  test('other cross-field checks: columns with a keys payload, a when for an operation not captured', () => {
    assertOneProblem(
      valid((c) => Object.assign(c.captures.orders, { payload: 'keys', columns: ['id'] })),
      'captures.orders.columns',
      /remove columns or use payload "row" or "diff"/,
    );
    assertOneProblem(
      valid((c) => Object.assign(c.captures.orders, { operations: ['INSERT'], when: { update: 'true' } })),
      'captures.orders.when.update',
      /UPDATE is not in operations \[INSERT\]; add it there or remove this condition/,
    );
  });

  test('an empty config says what to write', () => {
    assert.throws(
      () => parseConfig(undefined, 'rowcast.config.ts'),
      /rowcast\.config\.ts is empty: export default defineConfig/,
    );
  });
});

describe('parseConfig: several problems are reported together', () => {
  test('shape problems all at once', () => {
    const problems = problemsOf(
      valid((c) => {
        c.extra = true;
        c.captures.orders.payload = 'full';
        c.subscriptions.hook.endpoint = 'ftp://x';
        c.subscriptions.hook.deliveryPolicy = { timeout: '5 parsecs' };
      }),
    );
    assert.equal(problems.length, 4, problems.join('\n'));
    const at = (prefix: string) =>
      assert.ok(
        problems.some((p) => p.startsWith(prefix)),
        `a problem at ${prefix}:\n${problems.join('\n')}`,
      );
    at('unknown key "extra"');
    at('captures.orders.payload: ');
    at('subscriptions.hook.endpoint: ');
    at('subscriptions.hook.deliveryPolicy.timeout: ');
  });

  test('reference problems all at once', () => {
    const problems = problemsOf(
      valid((c) => {
        c.captures.orders.topic = 'a';
        c.captures.other = { table: 'other', topic: 'b' };
        c.subscriptions.hook.topic = 'c';
        c.subscriptions.hook.deliveryPolicy = { minDelay: '1h', maxDelay: '1m' };
        c.subscriptions.hook.secret = { env: UNSET_ENV };
      }),
    );
    assert.deepEqual(
      problems.map((p) => p.slice(0, p.indexOf(':'))),
      [
        'captures.orders.topic',
        'captures.other.topic',
        'subscriptions.hook.topic',
        'subscriptions.hook.deliveryPolicy.minDelay',
        'subscriptions.hook.secret.env',
      ],
    );
  });
});

describe('parseConfig: defaults and durations', () => {
  test('a minimal config gets every default', () => {
    const config = parseConfig({
      topics: { orders: {} },
      captures: { orders: { table: 'orders', topic: 'orders' } },
      subscriptions: { hook: { topic: 'orders', protocol: 'http', endpoint: 'http://localhost:3000/hook' } },
    });
    const capture = config.captures.orders!;
    assert.deepEqual(capture.operations, ['INSERT', 'UPDATE', 'DELETE']);
    assert.equal(capture.payload, 'row');
    assert.equal(capture.columns, undefined);
    assert.equal(capture.when, undefined);
    const sub = httpSub(config);
    assert.equal(sub.format, 'envelope');
    assert.deepEqual(sub.headers, {});
    assert.equal(sub.maxConcurrency, 32);
    assert.equal(sub.secret, undefined);
    assert.deepEqual(sub.deliveryPolicy, {
      maxAttempts: 10,
      minDelay: 1000,
      maxDelay: 300_000,
      timeout: 10_000,
      maxRetryAfter: 3_600_000,
    });
    assert.deepEqual(config.runtime, {
      pollInterval: 1000,
      lease: 60_000,
      batchSize: 500,
      concurrency: 256,
      retention: 86_400_000,
      deadRetention: 14 * 86_400_000,
      shutdownGrace: 10_000,
      logLevel: 'info',
      http: { host: '127.0.0.1' },
      allowPrivateEndpoints: false,
      tracing: {},
    });
    assert.deepEqual(config.database, { connectTimeout: 10_000, keepAlive: 5_000, statementTimeout: 30_000 });
  });

  test('an empty object is a valid config with nothing in it', () => {
    const config = parseConfig({});
    assert.deepEqual([config.topics, config.captures, config.subscriptions], [{}, {}, {}]);
  });

  test('a partial delivery policy keeps the other defaults; a { schema } table keeps its name', () => {
    const config = parseConfig(
      valid((c) => {
        c.subscriptions.hook.deliveryPolicy = { maxAttempts: 1, maxDelay: '2m' };
        c.captures.orders.table = { name: 'a.b' };
      }),
    );
    assert.deepEqual(httpSub(config).deliveryPolicy, {
      maxAttempts: 1,
      minDelay: 1000,
      maxDelay: 120_000,
      timeout: 10_000,
      maxRetryAfter: 3_600_000,
    });
    assert.deepEqual(config.captures.orders!.table, { schema: 'public', name: 'a.b' });
  });

  test('durations are parsed to milliseconds', () => {
    const config = parseConfig(
      valid((c) => {
        c.subscriptions.hook.deliveryPolicy = {
          minDelay: '250ms',
          maxDelay: '2m',
          timeout: '1.5s',
          maxRetryAfter: '6h',
        };
        c.runtime = { pollInterval: 750, lease: ' 30 s ', retention: '7d', deadRetention: '0ms' };
      }),
    );
    assert.deepEqual(httpSub(config).deliveryPolicy, {
      maxAttempts: 10,
      minDelay: 250,
      maxDelay: 120_000,
      timeout: 1500,
      maxRetryAfter: 21_600_000,
    });
    assert.equal(config.runtime.pollInterval, 750);
    assert.equal(config.runtime.lease, 30_000);
    assert.equal(config.runtime.retention, 604_800_000);
    assert.equal(config.runtime.deadRetention, 0);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('5 parsecs'), undefined);
    assert.equal(parseDuration(Number.NaN), undefined);
  });
});

describe('parseConfig: webhook secrets', () => {
  test('a malformed secret is named with its path, says what a secret looks like, and is not echoed', () => {
    const p = assertOneProblem(
      valid((c) => (c.subscriptions.hook.secret = 'whsec_hunter2')),
      'subscriptions.hook.secret',
      /a Standard Webhooks secret: "whsec_" followed by 24–64 random bytes in base64/,
    );
    assert.ok(!p.includes('hunter2'), p);
  });

  test('secretRotationOverlap: 24h by default, a duration of at most 30 days', () => {
    assert.equal(httpSub(parseConfig(valid())).secretRotationOverlap, 86_400_000);
    assert.equal(
      httpSub(parseConfig(valid((c) => (c.subscriptions.hook.secretRotationOverlap = '7d')))).secretRotationOverlap,
      7 * 86_400_000,
    );
    assert.equal(
      httpSub(parseConfig(valid((c) => (c.subscriptions.hook.secretRotationOverlap = 0)))).secretRotationOverlap,
      0,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.secretRotationOverlap = '31d')),
      'subscriptions.hook.secretRotationOverlap',
      /at most 30 days/,
    );
    assertOneProblem(
      valid((c) => (c.subscriptions.hook.secretRotationOverlap = '-1h')),
      'subscriptions.hook.secretRotationOverlap',
      /not a duration/,
    );
  });
});

describe('parseConfig: function runtimes', () => {
  const fn = (f: Record<string, unknown>) => valid((c) => (c.functions = { f }));
  test('python3: handler "module.function" resolved in directory, which becomes absolute', () => {
    const config = parseConfig(
      fn({ runtime: 'python3.12', handler: 'handlers.echo', directory: 'test/fixtures/python' }),
    );
    assert.equal(config.functions.f!.directory, path.resolve('test/fixtures/python'));
    assert.equal(config.functions.f!.handler, 'handlers.echo');
    assert.equal(parseConfig(fn({ handler: 'test/fixtures/handlers/publisher.ts' })).functions.f!.runtime, 'nodejs');
  });

  test('a python handler that is not module.function, or whose module is missing, says what to write', () => {
    assertOneProblem(
      fn({ runtime: 'python3', handler: 'lambda_handler', directory: 'test/fixtures/python' }),
      'functions.f.handler',
      /is not "module\.function"; write e\.g\. "lambda_function\.lambda_handler"/,
    );
    assertOneProblem(
      fn({ runtime: 'python3', handler: 'missing.handler', directory: 'test/fixtures/python' }),
      'functions.f.handler',
      /no module .*missing\.py; put the handler's module in the function's directory/,
    );
    assertOneProblem(
      fn({ runtime: 'python3', handler: 'handlers.echo', directory: 'no/such/dir' }),
      'functions.f.directory',
      /does not exist; give the folder of the function's code/,
    );
  });

  test('an unknown runtime, a provided bootstrap that is missing, and directory on a nodejs function are refused', () => {
    assertOneProblem(
      fn({ runtime: 'ruby3.3', handler: 'x' }),
      'functions.f.runtime',
      /one of "nodejs", "python3" \(or "python3\.12" …\), "provided"/,
    );
    assertOneProblem(
      fn({ runtime: 'provided', handler: 'x', directory: 'test/fixtures/python' }),
      'functions.f.bootstrap',
      /bootstrap does not exist; write the executable that speaks the Runtime API there/,
    );
    assertOneProblem(
      fn({ runtime: 'provided', handler: 'x', directory: 'test/fixtures/python', bootstrap: 'handlers.py' }),
      'functions.f.bootstrap',
      /is not executable; chmod \+x it/,
    );
    assertOneProblem(
      fn({ handler: 'test/fixtures/handlers/publisher.ts', directory: 'test/fixtures' }),
      'functions.f',
      /directory and bootstrap are for runtimes "python3" and "provided"/,
    );
  });
});

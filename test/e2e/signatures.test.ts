/**
 * Standard Webhooks signatures as a subscriber checks them, with the `standardwebhooks` package
 * (new Webhook(secret).verify(body, headers)): a correct delivery verifies; a tampered body, the wrong secret, a
 * changed webhook-id or timestamp, and a stale delivery (verified more than the package's 5-minute tolerance
 * later) fail. Each attempt is signed afresh, so a retry carries a new timestamp and verifies.
 * Secret rotation: from `rowcast apply` with a changed secret, from rotateSecret() and from `rowcast rotate-secret`;
 * during the overlap each request carries two signatures and both the old and the new secret verify it, after it
 * only the new one does; running processes pick the new secret up without a restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import {
  apply,
  formatPlan,
  generateSecret,
  parseConfig,
  type RowcastConfigInput,
  getStatus,
  rotateSecret,
  ErrorCodes,
  RowcastError,
} from '../../src/index.js';
import { describeRun, runCli } from '../support/cli.js';
import { applyRetention } from '../../src/store/retention.js';
import { applyConfig, eventually, type TestDatabase } from '../support/database.js';
import { scenario } from '../support/scenario.js';
import { type ReceivedRequest, WebhookReceiver } from '../support/webhook-receiver.js';

let db: TestDatabase;
let receiver: WebhookReceiver;
const secret = generateSecret();

let close: () => Promise<void>;

before(async () => {
  ({ db, receiver, close } = await scenario({
    receivers: { receiver: {} },
    tables: `CREATE TABLE things (id bigint PRIMARY KEY, name text, price numeric)`,
    config: ({ receiver }) => ({
      topics: { things: {} },
      captures: { things: { table: 'things', topic: 'things' } },
      subscriptions: {
        hook: {
          topic: 'things',
          protocol: 'http',
          endpoint: receiver.url,
          secret,
          deliveryPolicy: { minDelay: 100, maxDelay: 200 },
        },
      },
    }),
  }));
});

after(() => close?.());

const headersOf = (r: ReceivedRequest) => ({
  'webhook-id': String(r.headers['webhook-id']),
  'webhook-timestamp': String(r.headers['webhook-timestamp']),
  'webhook-signature': String(r.headers['webhook-signature']),
});

/** verify() throws WebhookVerificationError with this message (or returns the parsed body). */
function verifyError(secretToUse: string, body: string, headers: Record<string, string>): string | undefined {
  try {
    new Webhook(secretToUse).verify(body, headers);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof WebhookVerificationError, `a verification error, not ${String(err)}`);
    return err.message;
  }
}

/** Runs fn with Date.now() shifted by offsetMs: the receiver verifying later (or with a skewed clock). */
function at<T>(offsetMs: number, fn: () => T): T {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

let delivery: ReceivedRequest;

describe('Standard Webhooks signatures', () => {
  test('a correct delivery verifies and verify() returns the parsed body', async () => {
    await db.pool.query(`INSERT INTO things VALUES (9007199254740993, 'naïve 😀', 1.500)`);
    delivery = await eventually(() => receiver.requests[0], 'a delivery');
    const headers = headersOf(delivery);
    assert.equal(headers['webhook-id'], delivery.json.id);
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/);
    assert.ok(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000) < 60, 'timestamp in seconds, now');
    const parsed = new Webhook(secret).verify(delivery.body, headers) as any;
    assert.equal(parsed.body.after.id, '9007199254740993');
    assert.equal(parsed.body.after.name, 'naïve 😀', 'signed over the UTF-8 bytes of the body');
    // Also with the headers exactly as Node's http server hands them over.
    assert.doesNotThrow(() => new Webhook(secret).verify(delivery.body, delivery.headers as Record<string, string>));
  });

  test('a tampered body fails', () => {
    const headers = headersOf(delivery);
    const tampered = delivery.body.replace('1.500', '0.001');
    assert.notEqual(tampered, delivery.body);
    assert.equal(verifyError(secret, tampered, headers), 'No matching signature found');
    assert.equal(
      verifyError(secret, `${delivery.body} `, headers),
      'No matching signature found',
      'even one added byte',
    );
  });

  test('the wrong secret fails', () => {
    assert.equal(verifyError(generateSecret(), delivery.body, headersOf(delivery)), 'No matching signature found');
  });

  test('the message id and the timestamp are signed: changing either fails', () => {
    const headers = headersOf(delivery);
    assert.equal(
      verifyError(secret, delivery.body, { ...headers, 'webhook-id': '00000000-0000-0000-0000-000000000000' }),
      'No matching signature found',
    );
    // A replay with a fresh timestamp (to get past the tolerance) no longer matches the signature.
    assert.equal(
      verifyError(secret, delivery.body, {
        ...headers,
        'webhook-timestamp': String(Math.floor(Date.now() / 1000) + 1),
      }),
      'No matching signature found',
    );
    assert.equal(
      verifyError(secret, delivery.body, { ...headers, 'webhook-signature': '' }),
      'Missing required headers',
    );
  });

  test('a stale delivery fails: verified 10 minutes later (the tolerance is 5 minutes)', () => {
    const headers = headersOf(delivery);
    assert.equal(
      at(4 * 60_000, () => verifyError(secret, delivery.body, headers)),
      undefined,
      '4 minutes later: within tolerance',
    );
    assert.equal(
      at(10 * 60_000, () => verifyError(secret, delivery.body, headers)),
      'Message timestamp too old',
    );
    // Also the header itself rewritten to 10 minutes ago: refused on the timestamp before the signature is checked.
    const stale = String(Number(headers['webhook-timestamp']) - 600);
    assert.equal(
      verifyError(secret, delivery.body, { ...headers, 'webhook-timestamp': stale }),
      'Message timestamp too old',
    );
    // A receiver whose clock is 10 minutes behind sees a timestamp from the future.
    assert.equal(
      at(-10 * 60_000, () => verifyError(secret, delivery.body, headers)),
      'Message timestamp too new',
    );
  });

  test('every attempt is signed afresh: a retry has the same webhook-id, a new timestamp, and verifies', async () => {
    let failures = 0;
    receiver.reply = () => (failures++ < 1 ? { status: 500 } : { status: 200 });
    const before = receiver.requests.length;
    await db.pool.query(`INSERT INTO things VALUES (2, 'retried', 2)`);
    const [first, second] = await eventually(
      () => receiver.requests.length >= before + 2 && receiver.requests.slice(before),
      'two attempts',
    );
    assert.equal(first!.status, 500);
    assert.equal(second!.status, 200);
    assert.equal(first!.headers['webhook-id'], second!.headers['webhook-id']);
    assert.equal(first!.headers['rowcast-attempt'], '1');
    assert.equal(second!.headers['rowcast-attempt'], '2');
    // With the maximum (the default deliveryPolicy.maxAttempts), a receiver knows which attempt is the last.
    assert.equal(first!.headers['rowcast-max-attempts'], '10');
    assert.equal(second!.headers['rowcast-max-attempts'], '10');
    assert.ok(Number(second!.headers['webhook-timestamp']) >= Number(first!.headers['webhook-timestamp']));
    for (const r of [first!, second!]) assert.doesNotThrow(() => new Webhook(secret).verify(r.body, headersOf(r)));
  });
});

describe('secret rotation: two signatures during the overlap', () => {
  // Their own topic, table and receiver, so the deliveries above are not disturbed.
  let rotations: WebhookReceiver;
  let rotationConfig: RowcastConfigInput;
  const first = generateSecret();
  const second = generateSecret();
  let gadget = 0;

  before(async () => {
    rotations = await WebhookReceiver.start();
    await db.pool.query('CREATE TABLE gadgets (id int PRIMARY KEY, name text)');
    const pathOf = (path: string) => new URL(path, rotations.url).href;
    const withCredentials = (url: string) =>
      Object.assign(new URL(url), { username: 'hook', password: 'p@ss:wörd' }).href;
    rotationConfig = {
      topics: { things: {}, gadgets: {} },
      captures: { things: { table: 'things', topic: 'things' }, gadgets: { table: 'gadgets', topic: 'gadgets' } },
      subscriptions: {
        hook: {
          topic: 'things',
          protocol: 'http',
          endpoint: receiver.url,
          secret,
          deliveryPolicy: { minDelay: 100, maxDelay: 200 },
        },
        declared: { topic: 'gadgets', protocol: 'http', endpoint: pathOf('/declared'), secret: first },
        generated: { topic: 'gadgets', protocol: 'http', endpoint: pathOf('/generated') },
        leaked: { topic: 'gadgets', protocol: 'http', endpoint: pathOf('/leaked') },
        basic: { topic: 'gadgets', protocol: 'http', endpoint: withCredentials(pathOf('/basic')) },
      },
    };
    await applyConfig(db.pool, rotationConfig);
  });

  after(async () => {
    await rotations?.close();
  });

  const signaturesOf = (r: ReceivedRequest) => String(r.headers['webhook-signature']).split(' ');
  const secretOf = async (name: string) =>
    (await db.pool.query<{ secret: string }>('SELECT secret FROM rowcast.subscriptions WHERE name = $1', [name]))
      .rows[0]!.secret;

  /** Inserts gadgets until `path` receives one whose signatures satisfy `ready` (a process picks a rotation up via NOTIFY). */
  async function nextDelivery(
    path: string,
    ready: (r: ReceivedRequest) => boolean,
    what: string,
  ): Promise<ReceivedRequest> {
    return eventually(
      async () => {
        const seen = rotations.requests.length;
        await db.pool.query('INSERT INTO gadgets VALUES ($1, $2)', [++gadget, `gadget ${gadget}`]);
        const r = await eventually(
          () => rotations.requests.slice(seen).find((r) => r.path === path && r.json?.body?.after?.id === gadget),
          `gadget ${gadget} at ${path}`,
        );
        return ready(r) && r;
      },
      what,
      20_000,
    );
  }

  test('apply with a changed secret rotates it: the old one stays valid for secretRotationOverlap (default 24h)', async () => {
    const before = await nextDelivery('/declared', () => true, 'a delivery before the rotation');
    assert.equal(signaturesOf(before).length, 1);
    assert.equal(verifyError(first, before.body, headersOf(before)), undefined);

    const changed = structuredClone(rotationConfig);
    (changed.subscriptions!.declared as { secret: string }).secret = second;
    const plan = await apply(db.pool, parseConfig(changed, 'test config'), { dryRun: true });
    const printed = formatPlan(plan.steps);
    assert.match(printed, /~ subscription declared: rotate the signing secret \(the previous one stays valid for 1d\)/);
    assert.ok(!printed.includes(first) && !printed.includes(second), 'the plan never prints a secret');
    const started = Date.now();
    await apply(db.pool, parseConfig(changed, 'test config'));
    const row = (
      await db.pool.query(
        'SELECT secret, previous_secret, previous_secret_expires_at AS expires FROM rowcast.subscriptions WHERE name = $1',
        ['declared'],
      )
    ).rows[0];
    assert.equal(row.secret, second);
    assert.equal(row.previous_secret, first);
    assert.ok(
      Math.abs(row.expires.getTime() - (started + 24 * 3_600_000)) < 60_000,
      `expires in 24h, not at ${row.expires.toISOString()}`,
    );
    assert.deepEqual(
      (await apply(db.pool, parseConfig(changed, 'test config'), { dryRun: true })).steps,
      [],
      'applying the same config again changes nothing',
    );

    // The running process picked the new secret up without a restart.
    const during = await nextDelivery(
      '/declared',
      (r) => signaturesOf(r).length === 2,
      'a delivery with two signatures',
    );
    for (const s of signaturesOf(during)) assert.match(s, /^v1,[A-Za-z0-9+/]+={0,2}$/);
    assert.equal(verifyError(second, during.body, headersOf(during)), undefined, 'the new secret verifies');
    assert.equal(verifyError(first, during.body, headersOf(during)), undefined, 'the old secret verifies');
    assert.equal(
      verifyError(generateSecret(), during.body, headersOf(during)),
      'No matching signature found',
      'any other secret fails',
    );
    assert.equal(
      verifyError(second, `${during.body} `, headersOf(during)),
      'No matching signature found',
      'a tampered body fails with either',
    );
    assert.equal(verifyError(first, `${during.body} `, headersOf(during)), 'No matching signature found');
  });

  test('rotateSecret() refuses a secret the config declares (the next apply would undo it), and bad input', async () => {
    const refused = await rotateSecret(db.pool, 'declared').then(
      () => assert.fail('rotated'),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof RowcastError);
    assert.equal(refused.code, ErrorCodes.CONFIG_INVALID);
    assert.match(
      refused.message,
      /secret is declared in the config \(subscriptions\.declared\.secret\).*change the secret there and run rowcast apply/,
    );
    await assert.rejects(
      rotateSecret(db.pool, 'nope'),
      /No subscription "nope"; known: basic, declared, generated, hook, leaked/,
    );
    await assert.rejects(
      rotateSecret(db.pool, 'generated', { overlap: '1 fortnight' }),
      /overlap "1 fortnight" is not a duration of at most 30 days/,
    );
    await assert.rejects(rotateSecret(db.pool, 'generated', { overlap: '31d' }), /at most 30 days/);
    await assert.rejects(rotateSecret(db.pool, 'generated', { secret: 'hunter2' }), /not a Standard Webhooks secret/);
    assert.equal(await secretOf('declared'), second, 'nothing changed');
  });

  test('rotateSecret() with an overlap: both secrets verify until it expires, then only the new one', async () => {
    const old = await secretOf('generated');
    const overlapMs = 6000;
    const rotated = await rotateSecret(db.pool, 'generated', { overlap: overlapMs });
    assert.match(rotated.secret, /^whsec_/);
    assert.notEqual(rotated.secret, old);
    assert.equal(await secretOf('generated'), rotated.secret);
    assert.ok(rotated.previousSecretExpiresAt instanceof Date);

    const during = await nextDelivery(
      '/generated',
      (r) => signaturesOf(r).length === 2,
      'a delivery with two signatures',
    );
    assert.ok(
      Date.now() < rotated.previousSecretExpiresAt.getTime(),
      'delivered within the overlap (a loaded machine may need a longer one)',
    );
    assert.equal(verifyError(rotated.secret, during.body, headersOf(during)), undefined, 'the new secret verifies');
    assert.equal(verifyError(old, during.body, headersOf(during)), undefined, 'the old secret verifies');

    // After the expiry (compared at each send, no reload needed): one signature, the new secret's.
    await new Promise((r) => setTimeout(r, Math.max(0, rotated.previousSecretExpiresAt!.getTime() - Date.now()) + 100));
    const afterwards = await nextDelivery('/generated', () => true, 'a delivery after the overlap');
    assert.equal(signaturesOf(afterwards).length, 1);
    assert.equal(
      verifyError(rotated.secret, afterwards.body, headersOf(afterwards)),
      undefined,
      'the new secret verifies',
    );
    assert.equal(
      verifyError(old, afterwards.body, headersOf(afterwards)),
      'No matching signature found',
      'the old secret no longer does',
    );
    // Retention then forgets it.
    await applyRetention(db.pool, 86_400_000, 86_400_000);
    const row = (
      await db.pool.query(
        'SELECT previous_secret, previous_secret_expires_at FROM rowcast.subscriptions WHERE name = $1',
        ['generated'],
      )
    ).rows[0];
    assert.deepEqual(row, { previous_secret: null, previous_secret_expires_at: null });
  });

  test('rotating again within an overlap keeps at most two secrets: the oldest ends at once', async () => {
    const a = await secretOf('generated');
    const b = await rotateSecret(db.pool, 'generated', { overlap: '1h' });
    const c = await rotateSecret(db.pool, 'generated', { overlap: '1h', secret: generateSecret() });
    const row = (
      await db.pool.query('SELECT secret, previous_secret FROM rowcast.subscriptions WHERE name = $1', ['generated'])
    ).rows[0];
    assert.deepEqual([row.secret, row.previous_secret], [c.secret, b.secret]);
    assert.notEqual(row.previous_secret, a);
    const r = await nextDelivery(
      '/generated',
      (r) => verifyError(c.secret, r.body, headersOf(r)) === undefined,
      'a delivery signed with the newest secret',
    );
    assert.equal(signaturesOf(r).length, 2);
    assert.equal(verifyError(b.secret, r.body, headersOf(r)), undefined);
    assert.equal(verifyError(a, r.body, headersOf(r)), 'No matching signature found');
  });

  test('`rowcast rotate-secret --overlap 0` prints the new secret; the old one (leaked) ends at once', async () => {
    const old = await secretOf('leaked');
    const run = await runCli(['rotate-secret', 'leaked', '--overlap', '0'], { env: { DATABASE_URL: db.url } });
    assert.equal(run.code, 0, describeRun(run));
    const printed = run.stdout.trim();
    assert.match(printed, /^whsec_[A-Za-z0-9+/]+={0,2}$/, 'stdout is the new secret alone (for scripts)');
    assert.equal(printed, await secretOf('leaked'));
    assert.match(run.stderr, /the previous one stays valid no longer \(ended now\)/);
    assert.ok(!run.stderr.includes(printed) && !run.stderr.includes(old), 'no secret on stderr');
    const r = await nextDelivery(
      '/leaked',
      (r) => verifyError(printed, r.body, headersOf(r)) === undefined,
      'a delivery signed with the new secret',
    );
    assert.equal(signaturesOf(r).length, 1);
    assert.equal(verifyError(old, r.body, headersOf(r)), 'No matching signature found');

    const status = await runCli(['status', '--secrets'], { env: { DATABASE_URL: db.url } });
    assert.equal(status.code, 0, describeRun(status));
    assert.match(
      status.stdout,
      new RegExp(`^secret leaked: ${printed.replace(/[+/]/g, '\\$&')}$`, 'm'),
      'no previous secret after --overlap 0',
    );
    assert.match(
      status.stdout,
      /^secret generated: whsec_\S+ \(the previous secret also signs until \d{4}-\d\d-\d\dT[\d:.]+Z\)$/m,
    );

    const bad = await runCli(['rotate-secret', 'leaked', '--overlap', 'soon'], { env: { DATABASE_URL: db.url } });
    assert.equal(bad.code, 2, describeRun(bad));
    assert.match(bad.stderr, /overlap "soon" is not a duration of at most 30 days; write e\.g\. "24h", "7d", or 0/);
  });

  test('credentials in an endpoint URL are sent as HTTP Basic authentication, never in the URL, and never shown', async () => {
    const r = await nextDelivery('/basic', () => true, 'a delivery to an endpoint with credentials');
    assert.equal(r.headers.authorization, `Basic ${Buffer.from('hook:p@ss:wörd').toString('base64')}`);
    assert.equal(r.path, '/basic');
    const shown = (await getStatus(db.pool)).subscriptions.find((s) => s.name === 'basic')!.endpoint;
    assert.match(shown, /^http:\/\/hook:\*\*\*@127\.0\.0\.1:\d+\/basic$/);
  });

  test('a secret taken out of the config is kept, and from then on rotateSecret() may rotate it', async () => {
    const withoutSecret = structuredClone(rotationConfig);
    delete (withoutSecret.subscriptions!.declared as { secret?: unknown }).secret;
    const plan = await apply(db.pool, parseConfig(withoutSecret, 'test config'));
    assert.deepEqual(
      plan.steps.map((s) => s.summary),
      ['~ subscription declared (secret no longer in the config; kept)'],
    );
    assert.equal(await secretOf('declared'), second);
    const rotated = await rotateSecret(db.pool, 'declared', { overlap: '1h' });
    const row = (
      await db.pool.query('SELECT secret, previous_secret FROM rowcast.subscriptions WHERE name = $1', ['declared'])
    ).rows[0];
    assert.deepEqual([row.secret, row.previous_secret], [rotated.secret, second]);
    assert.deepEqual(
      (await apply(db.pool, parseConfig(withoutSecret, 'test config'), { dryRun: true })).steps,
      [],
      'apply leaves the rotated secret alone',
    );
  });

  test('a config with a bad secretRotationOverlap is refused with its path', () => {
    const bad = structuredClone(rotationConfig);
    (bad.subscriptions!.declared as Record<string, unknown>).secretRotationOverlap = '60d';
    assert.throws(
      () => parseConfig(bad, 'test config'),
      /subscriptions\.declared\.secretRotationOverlap: at most 30 days/,
    );
  });
});

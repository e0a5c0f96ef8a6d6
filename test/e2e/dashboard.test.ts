import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { generateSecret, type RowcastRuntime } from '../../src/index.js';
import { startHttpServer } from '../../src/app/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { launchBrowser, SHOTS, skipWithoutChromium } from '../support/browser.js';

/**
 * The dashboard in a real headless Chromium against a real rowcast (admin API, live tail) and a real webhook
 * receiver: sign in, watch a row arrive in the live tail, make the subscriber fail, find the dead letter, redrive
 * it, see it delivered. Screenshots go to test-results/; with ROWCAST_UPDATE_README_IMAGE=1 the overview's also
 * replaces the README's picture (a plain run never changes a tracked file).
 */
const skip = skipWithoutChromium;
const README_IMAGE = 'docs/images/dashboard.png';
const TOKEN = 'dashboard-test-token';
/** Pages refresh every few seconds; the machine may be slow. */
const UI_TIMEOUT = 30_000;

let db: TestDatabase;
let receiver: WebhookReceiver;
let rowcast: RowcastRuntime;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const secret = generateSecret();

const shot = (name: string) => page.screenshot({ path: `${SHOTS}/dashboard-${name}.png`, fullPage: true });
const go = (hash: string) => page.goto(`${rowcast.httpUrl}/dashboard/#/${hash}`);
const hookRequests = () => receiver.requests.filter((r) => r.headers['rowcast-subscription'] === 'orders-hook');

before(async () => {
  if (skip) return;
  db = await createTestDatabase();
  receiver = await WebhookReceiver.start(secret);
  await db.pool.query(`CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, total numeric(12,2));
                       CREATE TABLE customers (id bigint PRIMARY KEY, email text)`);
  const config = await applyConfig(db.pool, {
    topics: { orders: {}, welcomes: {} },
    // A function in the chain too, so the overview (and the README's picture) shows every kind of node.
    functions: {
      welcome: { handler: 'test/fixtures/handlers/publisher.ts', environment: { ENV_TOPIC_ARN: 'welcomes' } },
    },
    captures: {
      'orders-row': { table: 'orders', topic: 'orders', subject: 'order changed' },
      'new-customers': { table: 'customers', function: 'welcome', operations: ['INSERT'] },
    },
    subscriptions: {
      'welcome-mail': { topic: 'welcomes', protocol: 'http', endpoint: `${receiver.url}/welcomes`, secret },
      // Two quick attempts, then dead: the failure path takes about a second. Rows: the request and response of a
      // successful attempt, and Resend of a done delivery, are its row's (a cursor keeps nothing of a first-time
      // success).
      'orders-hook': {
        topic: 'orders',
        protocol: 'http',
        endpoint: receiver.url,
        secret,
        deliveryPolicy: { maxAttempts: 2, minDelay: 100, maxDelay: 200 },
        cursor: false,
      },
      'refunds-hook': {
        topic: 'orders',
        protocol: 'http',
        endpoint: `${receiver.url}/refunds`,
        secret,
        filterPolicy: { status: ['refunded'] },
        filterPolicyScope: 'MessageBody',
      },
    },
  });
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1', token: TOKEN } }, config.functions);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 860 }, timezoneId: 'UTC', locale: 'en-GB' });
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    // The sign-in probe's 401 is expected; anything else the page logs as an error is a bug.
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) pageErrors.push(msg.text());
  });
});

after(async () => {
  await browser?.close();
  await rowcast?.stop();
  await receiver?.close();
  await db?.drop();
});

describe('dashboard in headless Chromium', { skip }, () => {
  test('the shell and its libraries are public; the API is not', async () => {
    const shell = await fetch(`${rowcast.httpUrl}/dashboard/`);
    assert.equal(shell.status, 200);
    assert.match(shell.headers.get('content-security-policy') ?? '', /script-src 'self' 'sha256-/);
    assert.match(await shell.text(), /<script type="importmap">/);
    for (const path of [
      'vendor/preact.mjs',
      'vendor/preact-hooks.mjs',
      'vendor/htm.mjs',
      'vendor/uplot.mjs',
      'vendor/uplot.css',
      'assets/app.js',
      'assets/dashboard.css',
    ]) {
      assert.equal((await fetch(`${rowcast.httpUrl}/dashboard/${path}`)).status, 200, path);
    }
    assert.equal(
      (await fetch(`${rowcast.httpUrl}/dashboard/vendor/package.json`)).status,
      404,
      'only the listed library files are served',
    );
    assert.equal((await fetch(`${rowcast.httpUrl}/api/overview`)).status, 401);
    const redirect = await fetch(`${rowcast.httpUrl}/dashboard`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), 'dashboard/');
  });

  test('sign in: a wrong token is refused, the right one opens the overview', async () => {
    await page.goto(`${rowcast.httpUrl}/dashboard`);
    await page.getByLabel('API token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'did not accept' }).waitFor();
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('rowcast.token')), TOKEN);
    // The chain: the capture's table, the topic and both subscriptions are nodes of the picture.
    const chain = page.getByRole('group', { name: /The chain/ });
    for (const name of [
      /Capture orders-row on table public\.orders/,
      /Topic orders/,
      /Subscription orders-hook/,
      /Subscription refunds-hook/,
    ]) {
      await chain.getByLabel(name).waitFor();
    }
  });

  test('without a token on the server, the dashboard opens without asking', async () => {
    const open = await startHttpServer({
      pool: db.pool,
      log: createLogger('silent'),
      settings: { port: 0, host: '127.0.0.1' },
      isReady: async () => ({ ready: true, checks: {} }),
    });
    const other = await browser.newPage();
    try {
      await other.goto(`${open.url}/dashboard/`);
      await other.getByRole('heading', { name: 'Overview' }).waitFor();
      assert.equal(await other.getByLabel('API token').count(), 0);
      assert.equal(await other.getByRole('button', { name: 'Sign out' }).count(), 0);
    } finally {
      await other.close();
      await open.close();
    }
  });

  test('a row inserted into a captured table shows up in the live tail, then its delivery', async () => {
    await page.getByRole('link', { name: 'Live tail' }).click();
    await page.getByRole('status').filter({ hasText: 'live' }).first().waitFor();
    await db.pool.query(`INSERT INTO orders VALUES (1, 'new', 10.50)`);
    const log = page.getByRole('log');
    await log
      .locator('.tail-event')
      .filter({ hasText: 'public.orders' })
      .filter({ hasText: 'INSERT' })
      .first()
      .waitFor();
    await log
      .locator('.tail-delivery')
      .filter({ hasText: 'orders-hook' })
      .filter({ hasText: 'delivered' })
      .first()
      .waitFor();
    await shot('tail');
    assert.equal(hookRequests().filter((r) => r.status === 200).length, 1);
  });

  test('a failing subscriber: dead letter, attempt history, redrive, delivered', async () => {
    receiver.reply = () => ({ status: 500, body: 'database is down' });
    await db.pool.query(`INSERT INTO orders VALUES (2, 'paid', 99.00)`);
    await go('dead-letters?subscription=orders-hook');
    await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'orders-hook' }).filter({ hasText: 'dead' });
    await row.first().waitFor();
    await shot('dead-letters');

    // Its detail: two attempts, both answered 500, and the last error.
    await row.first().getByRole('link').first().click();
    await page.getByRole('heading', { name: /^Delivery/ }).waitFor();
    await page.getByRole('note', { name: 'Last error' }).filter({ hasText: '500' }).waitFor();
    const attempts = page.getByRole('table', { name: 'Attempts' });
    await attempts.getByRole('row').nth(2).waitFor(); // header + two attempts
    assert.equal(await attempts.getByRole('row').count(), 3);
    await shot('delivery-dead');

    // The subscriber recovers; redrive from the detail page; the page follows the delivery to done.
    receiver.reply = () => ({ status: 200 });
    const before = hookRequests().length;
    await page.getByRole('button', { name: 'Redrive this delivery' }).click();
    await page.getByRole('status').filter({ hasText: 'Redriven: 1' }).first().waitFor();
    await page.locator('dl.facts .badge-done').waitFor();
    await eventually(
      () =>
        hookRequests()
          .slice(before)
          .some((r) => r.status === 200 && r.json?.body?.after?.id === '2'),
      'the redriven delivery at the receiver',
    );
    // Done: the notice says so, the old error is history (not the last outcome), the redrive is marked in the attempts.
    await page.getByRole('status').filter({ hasText: 'Redriven: 1. Delivered.' }).waitFor();
    assert.equal(
      await page.getByRole('note', { name: 'Last error' }).count(),
      0,
      'no "last error" on a delivery that succeeded',
    );
    await attempts.getByRole('row').nth(4).waitFor(); // header + two failed + the redrive + the delivered attempt
    assert.deepEqual(await attempts.getByRole('row').evaluateAll((rows) => rows.slice(1).map((r) => r.className)), [
      '',
      '',
      'redrive',
      '',
    ]);
    await attempts.getByRole('row', { name: /redriven/ }).waitFor();
    await shot('delivery-redriven');

    // The list shows the 200s of done deliveries as successes, without their stale errors.
    const deliveryId = page.url().split('/').at(-1)!;
    await go('deliveries?subscription=orders-hook');
    const done = page.getByRole('row').filter({ has: page.getByRole('link', { name: deliveryId, exact: true }) });
    await done.locator('.badge-done').waitFor();
    assert.equal(
      await page.locator('tr:has(.badge-done) .last-error').count(),
      0,
      'no red status or error on done deliveries',
    );
    assert.doesNotMatch(await done.innerText(), /500|database is down/);
    assert.match(await done.innerText(), /200/);
  });

  test("a delivery's attempts show the request sent (secrets redacted) and the response; Resend sends it again", async () => {
    receiver.reply = () => ({ status: 200, headers: { 'x-receiver': 'dashboard-test' }, body: 'thanks, stored' });
    await db.pool.query(`INSERT INTO orders VALUES (20, 'paid', 20.00)`);
    const id = await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT d.id::text FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id
        WHERE d.subscription = 'orders-hook' AND d.state = 'done' AND m.body::jsonb -> 'after' ->> 'id' = '20'`,
          )
        ).rows[0]?.id as string | undefined,
      'order 20 delivered',
    );
    await go(`deliveries/${id}`);
    await page.getByRole('heading', { name: /^Delivery/ }).waitFor();
    const attempts = page.getByRole('table', { name: 'Attempts' });
    await attempts.getByText('Request and response').first().click();
    const sent = await attempts.getByLabel('Request headers of attempt 1').innerText();
    assert.match(sent, /webhook-signature: \[redacted\]/);
    assert.match(sent, /rowcast-attempt: 1/);
    assert.match(sent, /rowcast-max-attempts: 2/);
    assert.ok(!sent.includes(secret.slice(6)), 'no secret on the page');
    const answered = await attempts.getByLabel('Response of attempt 1').innerText();
    assert.match(answered, /x-receiver: dashboard-test/);
    assert.match(answered, /thanks, stored/);
    await shot('delivery-attempt-exchange');

    // Resend: the same message (same webhook-id) arrives again; the history marks the new series.
    const first = hookRequests().filter((r) => r.json?.body?.after?.id === '20');
    assert.equal(first.length, 1);
    await page.getByRole('button', { name: 'Resend this delivery' }).click();
    await page.getByRole('status').filter({ hasText: 'Resent: 1. Delivered again' }).waitFor();
    const again = hookRequests().filter((r) => r.json?.body?.after?.id === '20');
    assert.equal(again.length, 2);
    assert.equal(again[1]!.headers['webhook-id'], first[0]!.headers['webhook-id']);
    await attempts.getByRole('row', { name: /resent: a new series of attempts/ }).waitFor();
    assert.deepEqual(await attempts.getByRole('row').evaluateAll((rows) => rows.slice(1).map((r) => r.className)), [
      '',
      'redrive resend',
      '',
    ]);
    await shot('delivery-resent');
  });

  test('redrive all dead letters of a subscription from the dead-letter page', async () => {
    receiver.reply = () => ({ status: 500 });
    await db.pool.query(`INSERT INTO orders VALUES (3, 'paid', 1), (4, 'paid', 2)`);
    await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT count(*)::int AS n FROM rowcast.deliveries WHERE subscription = 'orders-hook' AND state = 'dead'`,
          )
        ).rows[0].n === 2,
      'two dead deliveries',
    );
    receiver.reply = () => ({ status: 200 });
    await go('dead-letters?subscription=orders-hook');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: /Redrive all 2 dead of orders-hook/ }).click();
    await page.getByRole('status').filter({ hasText: 'Redrove 2 dead letters of orders-hook' }).first().waitFor();
    await eventually(
      () => ['3', '4'].every((id) => hookRequests().some((r) => r.status === 200 && r.json?.body?.after?.id === id)),
      'both redriven deliveries at the receiver',
    );
    await page.getByRole('row').filter({ hasText: 'None.' }).waitFor();
  });

  test("replay a capture's events to one subscription, with the same message ids", async () => {
    const delivered = hookRequests().filter((r) => r.status === 200);
    const ids = new Set(delivered.map((r) => r.headers['webhook-id']));
    await go('dead-letters');
    await page.getByLabel('Capture', { exact: true }).selectOption('orders-row');
    await page.getByLabel('To subscription', { exact: true }).selectOption('orders-hook');
    // The browser runs in UTC (newPage's timezoneId), so a datetime-local value is the UTC time.
    await page.getByLabel('Since', { exact: true }).fill(new Date(Date.now() - 10 * 60_000).toISOString().slice(0, 19));
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Replay', exact: true }).click();
    const outcome = page.getByRole('status').filter({ hasText: /Replayed \d+ events/ });
    await outcome.waitFor();
    const replayed = Number(/Replayed (\d+)/.exec(await outcome.innerText())![1]);
    assert.ok(replayed >= 4, `the capture's events so far were replayed (${replayed})`);
    await eventually(
      () => hookRequests().filter((r) => r.status === 200).length >= delivered.length + replayed,
      'the replayed deliveries',
    );
    const again = hookRequests()
      .filter((r) => r.status === 200)
      .slice(delivered.length);
    assert.ok(
      again.every((r) => ids.has(r.headers['webhook-id'])),
      'a replay resends the same message ids',
    );
  });

  test('the deliveries of a subscription, with its actions', async () => {
    await go('deliveries?subscription=orders-hook');
    await page
      .getByRole('group', { name: 'Subscription orders-hook' })
      .getByRole('button', { name: 'Pause' })
      .waitFor();
    const rows = page
      .getByRole('table', { name: /Newest first/ })
      .getByRole('row')
      .filter({ hasText: 'orders-hook' });
    await rows
      .filter({ has: page.locator('.badge-done') })
      .first()
      .waitFor();
    await page.getByLabel('State', { exact: true }).selectOption('dead');
    await page.getByRole('row').filter({ hasText: 'None.' }).waitFor();
    await page.getByRole('button', { name: 'Send test message' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: /Queued \S+/ })
      .first()
      .waitFor();
    await eventually(
      () => hookRequests().some((r) => r.status === 200 && r.json?.subject === 'rowcast dashboard test'),
      'the test message at the receiver',
    );
  });

  test('a 410 disables the subscription; Resume from the overview delivers what waited', async () => {
    receiver.reply = () => ({ status: 410 });
    await db.pool.query(`INSERT INTO orders VALUES (5, 'paid', 5)`);
    await go('overview');
    const subscriptions = page.getByRole('table', { name: 'Subscriptions' });
    const row = subscriptions.getByRole('row').filter({ hasText: 'orders-hook' });
    await row.locator('.badge-disabled').waitFor();
    receiver.reply = () => ({ status: 200 });
    await row.getByRole('button', { name: 'Resume orders-hook' }).click();
    await row.locator('.badge-active').waitFor();
    await eventually(
      () => hookRequests().some((r) => r.status === 200 && r.json?.body?.after?.id === '5'),
      'the waiting delivery after resume',
    );
  });

  test('pause and resume a function from the overview', async () => {
    await go('overview');
    const row = page.getByRole('table', { name: 'Functions' }).getByRole('row').filter({ hasText: 'welcome' });
    await row.getByRole('button', { name: 'Pause function welcome' }).click();
    await row.locator('.badge-paused').waitFor();
    await row.getByRole('button', { name: 'Resume function welcome' }).click();
    await row.locator('.badge-active').waitFor();
  });

  test('the filter-policy tester shows which subscriptions a message matches', async () => {
    await go('filter-tester');
    await page
      .getByLabel('Message', { exact: true })
      .fill(JSON.stringify({ op: 'UPDATE', after: { id: '7' }, status: 'refunded' }));
    await page.getByLabel('Attributes (JSON object)').fill('{"op": "UPDATE"}');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    const results = page.getByRole('table', { name: /subscriptions match/ });
    await results.waitFor();
    assert.match(await results.getByRole('row').filter({ hasText: 'refunds-hook' }).innerText(), /yes/);
    await page.getByLabel('Message', { exact: true }).fill(JSON.stringify({ status: 'paid' }));
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await results.getByRole('row').filter({ hasText: 'refunds-hook' }).filter({ hasText: 'no' }).waitFor();
    await shot('filter-tester');

    // Bad input gets a message saying what to write.
    await page.getByLabel('Attributes (JSON object)').fill('[1]');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'JSON object' }).waitFor();
  });

  test('rate and latency charts are drawn from /api/stats', async () => {
    await go('charts');
    await page.getByRole('heading', { name: 'Rates and latency' }).waitFor();
    await page.locator('.chart canvas').nth(1).waitFor();
    await shot('charts');
    await page.getByLabel('Window', { exact: true }).selectOption('5m');
    await page.getByText('one point per 10 s').waitFor();
    await page.locator('.chart canvas').nth(1).waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
  });

  test('the overview picture, live: rates, backlog and errors per node (the README screenshot)', async () => {
    await db.pool.query(`INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 3) g`);
    await eventually(
      () => receiver.requests.filter((r) => r.path === '/hook/welcomes' && r.status === 200).length === 3,
      'three welcome messages',
    );
    await go('overview');
    await page
      .getByRole('group', { name: /The chain/ })
      .getByLabel(/Function welcome, active/)
      .waitFor();
    const hook = page.getByRole('group', { name: /The chain/ }).getByLabel(/Subscription orders-hook/);
    // Delivered messages show up as a rate on the subscription's node.
    await eventually(
      async () => Number(/: ([\d.]+)\/min delivered/.exec((await hook.getAttribute('aria-label')) ?? '')?.[1] ?? 0) > 0,
      'a delivery rate on orders-hook',
      UI_TIMEOUT,
    );
    await page.screenshot({ path: `${SHOTS}/dashboard-overview.png` });
    if (process.env.ROWCAST_UPDATE_README_IMAGE === '1') {
      mkdirSync('docs/images', { recursive: true });
      copyFileSync(`${SHOTS}/dashboard-overview.png`, README_IMAGE);
    }
    // Nodes are links reachable from the keyboard.
    await hook.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Deliveries' }).waitFor();
    assert.match(page.url(), /#\/deliveries\?subscription=orders-hook$/);
    assert.deepEqual(pageErrors, [], 'the page logged no errors');
  });
});

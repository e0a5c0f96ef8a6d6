import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RowcastRuntime } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { launchBrowser, SHOTS, skipWithoutChromium } from '../support/browser.js';

/**
 * The overview's Captures table in a real headless Chromium against a real rowcast: each capture's last backfill
 * (state, rows sent of the total) and a button that starts one (POST /api/captures/:name/backfill), or resumes one
 * that stopped half-way.
 */

const skip = skipWithoutChromium;
const ROWS = 250;
/** Pages refresh every few seconds; the machine may be slow. */
const UI_TIMEOUT = 30_000;

let db: TestDatabase;
let rowcast: RowcastRuntime;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  if (skip) return;
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, note text)`);
  await db.pool.query(`INSERT INTO items SELECT i, 'row ' || i FROM generate_series(1, ${ROWS}) AS i`);
  await applyConfig(db.pool, {
    topics: { items: {} },
    captures: { items: { table: 'items', topic: 'items', payload: 'row' } },
  });
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', locale: 'en-GB' });
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('response', (res) => {
    if (res.status() >= 400) pageErrors.push(`${res.status()} ${new URL(res.url()).pathname}`);
  });
});

after(async () => {
  await browser?.close();
  await rowcast?.stop();
  await db?.drop();
});

describe('dashboard: backfills', { skip }, () => {
  test('the overview starts a backfill of a capture and shows its progress to the end; a stopped one offers to resume', async () => {
    await page.goto(`${rowcast.httpUrl}/dashboard/#/overview`);
    const row = page.getByRole('table', { name: 'Captures' }).getByRole('row').filter({ hasText: 'items' });
    await row.getByText('none').waitFor();
    await row.getByRole('button', { name: 'Backfill of items' }).click();
    await row.getByText(`Started: ${ROWS} rows to send.`).or(row.locator('.badge-done')).first().waitFor();
    // The page refreshes every few seconds: the finished backfill, every row sent.
    await row.locator('.badge-done').waitFor();
    await row.getByText(`${ROWS} / ${ROWS}`).waitFor();
    assert.equal(await row.getByRole('progressbar', { name: 'Backfill of items' }).getAttribute('value'), String(ROWS));
    const reads = await eventually(async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM rowcast.events WHERE capture = 'items' AND op = 'READ'`,
      );
      return rows[0]!.n === ROWS ? rows[0]!.n : null;
    }, 'every READ event');
    assert.equal(reads, ROWS);

    // One that stopped half-way (its process killed): shown as failed, with a button that resumes it.
    await db.pool.query(
      `UPDATE rowcast.backfills SET state = 'failed', error = 'killed', rows_sent = 100, last_key = '{"id": 100}', finished_at = NULL WHERE capture = 'items'`,
    );
    await row.locator('.badge-failed').waitFor();
    await row.getByText(`100 / ${ROWS}`).waitFor();
    await row.getByRole('button', { name: 'Resume backfill of items' }).click();
    await row.locator('.badge-done').waitFor();
    await row.getByText(`${ROWS} / ${ROWS}`).waitFor();
    await page.screenshot({ path: `${SHOTS}/dashboard-backfill.png`, fullPage: true });
    assert.deepEqual(pageErrors, []);
  });

  test('a backfill with a condition and a batch size, as `rowcast backfill --where --batch`; bad ones are refused with the reason', async () => {
    await page.goto(`${rowcast.httpUrl}/dashboard/#/overview`);
    const row = page.getByRole('table', { name: 'Captures' }).getByRole('row').filter({ hasText: 'items' });
    await row.locator('.badge-done').waitFor();
    await row.getByText('options').click();
    const where = row.getByLabel('Only rows where (SQL)');
    const batch = row.getByLabel('Rows per batch');
    const button = row.getByRole('button', { name: 'Backfill of items' });
    const sent = async () =>
      (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rowcast.events WHERE op = 'READ'`)).rows[0]!
        .n;
    const before = await sent();

    // Checked by the server as the CLI's are: the reason is shown, nothing starts.
    await where.fill('nonsense(');
    await button.click();
    await row.getByText(/is not a valid condition on public\.items/).waitFor();
    await where.fill('id <= 40');
    await batch.fill('0');
    await button.click();
    await row.getByText(/batch must be a whole number of rows from 1 to 100000, not 0/).waitFor();
    await batch.fill('ten');
    await button.click();
    await row.getByText(/batch must be a whole number of rows from 1 to 100000, not "ten"/).waitFor();
    assert.equal(await sent(), before, 'a refused backfill sends nothing');
    pageErrors.length = 0; // the refusals' 400s

    await batch.fill('7');
    await button.click();
    await row.getByText('Started: 40 rows to send.').or(row.getByText('40 / 40')).first().waitFor();
    await row.getByText('40 / 40').waitFor();
    await row.locator('.badge-done').waitFor();
    const { rows } = await db.pool.query<{ where_sql: string; batch: number }>(
      `SELECT where_sql, batch FROM rowcast.backfills WHERE capture = 'items'`,
    );
    assert.deepEqual(rows, [{ where_sql: 'id <= 40', batch: 7 }]);
    const ids = await eventually(async () => {
      const { rows: read } = await db.pool.query<{ id: number }>(
        `SELECT (e.after ->> 'id')::int AS id FROM rowcast.events e WHERE e.op = 'READ' ORDER BY e.id OFFSET $1`,
        [before],
      );
      return read.length >= 40 ? read.map((r) => r.id) : null;
    }, 'the 40 rows');
    assert.deepEqual(
      ids,
      Array.from({ length: 40 }, (_, i) => i + 1),
      'only the rows the condition holds for, in key order',
    );
    assert.deepEqual(pageErrors, []);
  });
});

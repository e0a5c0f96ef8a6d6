import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { createPool } from '../../src/index.js';
import { DEFAULT_DATABASE_SETTINGS, isClientDeadline } from '../../src/store/pool.js';
import { createTestDatabase, eventually, type TestDatabase } from '../support/database.js';
import { patient } from '../support/patience.js';

/*
 * database.* (connect timeout, TCP keepalive, statement timeout) reach every connection: a statement past its
 * deadline fails, and a connection that stops answering (a half-open socket, as in a partition) is closed by the
 * client shortly after, so that nothing waits on it forever.
 */

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

/** A TCP proxy to the database that can stop forwarding either way without closing anything: a half-open socket. */
async function blackHoleProxy(target: URL) {
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) s.on('error', () => {});
    client.on('data', (d) => void (cut || upstream.write(d)));
    upstream.on('data', (d) => void (cut || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(target.href);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.href,
    cut: () => void (cut = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('database.* has defaults, takes durations, and names the key of a bad value', () => {
  assert.deepEqual(DEFAULT_DATABASE_SETTINGS, { connectTimeout: 10_000, keepAlive: 5_000, statementTimeout: 30_000 });
  const parsed = configSchema.parse({ database: { connectTimeout: '3s', keepAlive: 2000, statementTimeout: '1m' } });
  assert.deepEqual(parsed.database, { connectTimeout: 3000, keepAlive: 2000, statementTimeout: 60_000 });
  const bad = configSchema.safeParse({ database: { statementTimeout: 'soon' } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues[0]!.path, ['database', 'statementTimeout']);
});

test('a statement past database.statementTimeout is cancelled by PostgreSQL', async () => {
  const pool = createPool(db.url, { max: 1, database: { statementTimeout: 300 } });
  try {
    assert.equal((await pool.query(`SELECT current_setting('statement_timeout') AS s`)).rows[0].s, '300ms');
    await assert.rejects(pool.query('SELECT pg_sleep(5)'), (err: Error & { code?: string }) => err.code === '57014');
    assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1, 'the pool goes on');
  } finally {
    await pool.end();
  }
});

test(
  'a connection that stops answering (half-open) is closed by the client past the deadline, in a pool and checked out',
  { timeout: patient(60_000) },
  async () => {
    const proxy = await blackHoleProxy(new URL(db.url));
    const pool = createPool(proxy.url, { max: 2, database: { statementTimeout: 500 } });
    try {
      const held = await pool.connect();
      const broke = once(held, 'error');
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
      assert.equal(pool.totalCount, 2);
      proxy.cut();
      // Neither PostgreSQL's statement_timeout (its answer cannot arrive) nor TCP says anything: the client's deadline does.
      await assert.rejects(pool.query('SELECT 1'), (err) => isClientDeadline(err));
      await assert.rejects(held.query('SELECT 1'), (err) => isClientDeadline(err));
      // The checked-out connection errors like any lost one, so its holder drops it.
      await broke;
      held.release(true);
      await eventually(() => pool.totalCount === 0, 'both connections closed');
    } finally {
      await pool.end();
      await proxy.close();
    }
  },
);

test(
  'connecting gives up after database.connectTimeout when the server never answers',
  { timeout: patient(30_000) },
  async () => {
    // A listener that accepts and never speaks: PostgreSQL's startup never completes.
    const server = net.createServer(() => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = new URL(db.url);
    url.hostname = '127.0.0.1';
    url.port = String((server.address() as net.AddressInfo).port);
    const pool = createPool(url.href, { max: 1, database: { connectTimeout: 500 } });
    try {
      await assert.rejects(pool.query('SELECT 1'), /timeout/i);
    } finally {
      await pool.end();
      server.close();
      server.unref();
    }
  },
);

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fetch } from 'undici';
import { topicStreamRoutes } from '../../src/app/http/topic-stream-routes.js';
import { startHttpServer } from '../../src/app/http/server.js';
import { pauseSubscription, type RowcastRuntime, sendTestMessage } from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { openSse, type SseEvent } from '../support/sse-client.js';

let db: TestDatabase;
let rowcast: RowcastRuntime;
let base: string;

before(async () => {
  db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE t_rows (id int PRIMARY KEY, note text)`);
  await applyConfig(db.pool, {
    topics: { t: {}, u: {}, v: {}, big: {} },
    captures: { 't-rows': { table: 't_rows', topic: 't' } },
    // Paused: only the test message sent to it matters (the last stream test).
    subscriptions: { 'u-hook': { topic: 'u', protocol: 'http', endpoint: 'http://127.0.0.1:9/' } },
  });
  await pauseSubscription(db.pool, 'u-hook');
  rowcast = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
  base = rowcast.httpUrl!;
});

after(async () => {
  await rowcast?.stop();
  await db?.drop();
});

type Stream = Awaited<ReturnType<typeof openSse>>;

/**
 * "Nothing else arrives", deterministically: writes a sentinel message to the topic (a higher seq than anything
 * before it), waits until the stream has delivered it, then removes it (from the stream's events and from the
 * table, so that later replays do not see it). A stream sends in seq order, so whatever it would have sent before
 * the sentinel has arrived by then: the events left are all there are.
 */
async function drainTo(stream: Stream, topic: string): Promise<SseEvent[]> {
  const { rows } = await db.pool.query(
    `INSERT INTO rowcast.messages (topic, body) VALUES ($1, '{"sentinel":true}') RETURNING seq::text AS seq`,
    [topic],
  );
  const seq: string = rows[0].seq;
  const at = await eventually(
    () => {
      const i = stream.events.findIndex((e) => e.id === seq);
      return i >= 0 ? i + 1 : 0;
    },
    'the sentinel message',
    20_000,
  );
  stream.events.splice(at - 1, 1);
  await db.pool.query(`DELETE FROM rowcast.messages WHERE seq = $1`, [seq]);
  return stream.events;
}

/**
 * Waits until the topic streams' poller has run `ticks` full rounds after this call (each round checks the writers
 * of rowcast.messages in pg_locks: its query is seen in pg_stat_activity, started after now). Used where a sentinel
 * cannot help: while a lower seq is uncommitted nothing, sentinel included, may be sent.
 */
async function pollerTicks(ticks: number): Promise<void> {
  let since: string = (await db.pool.query(`SELECT clock_timestamp()::text AS t`)).rows[0].t;
  for (let i = 0; i < ticks; i++) {
    since = await eventually(
      async () =>
        (
          await db.pool.query(
            `SELECT max(query_start)::text AS t FROM pg_stat_activity
              WHERE datname = current_database() AND application_name <> 'rowcast test' AND query_start > $1::timestamptz
                AND query LIKE '%FROM pg_' || 'locks l%' AND query LIKE '%virtual' || 'transaction%'`,
            [since],
          )
        ).rows[0].t,
      'a round of the topic streams poller',
    );
  }
}

/** True once the server has closed its end of the connection from client port `clientPort` (Linux: /proc/net/tcp). */
async function serverClosed(serverPort: number, clientPort: number): Promise<boolean> {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      const [, local, remote, state] = line.trim().split(/\s+/);
      if (local?.endsWith(`:${hex(serverPort)}`) && remote?.endsWith(`:${hex(clientPort)}`)) return state !== '01'; // 01: ESTABLISHED
    }
  }
  return true; // gone altogether
}

describe('health', () => {
  test('/livez answers while the process runs', async () => {
    const res = await fetch(`${base}/livez`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'live' });
  });

  test('/readyz is 200 with every check passing', async () => {
    const body = await eventually(async () => {
      const res = await fetch(`${base}/readyz`);
      return res.status === 200 && ((await res.json()) as { status: string; checks: Record<string, unknown> });
    }, '/readyz 200');
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.checks, { database: true, migrations: true, listener: true, accepting: true });
  });

  test('a port in use fails the start (and leaves nothing running)', async () => {
    const port = Number(new URL(base).port);
    await assert.rejects(
      startTestRowcast(db.url, { http: { port, host: '127.0.0.1' } }),
      /runtime\.http: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
    );
  });

  test('an unknown route is a JSON 404', async () => {
    const res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'not_found');
    assert.match(body.error.message, /^No route GET \/nope\.$/);
  });

  test('every error is { error: { code, message } }: topic streams too', async () => {
    const noTopic = await fetch(`${base}/topics/nope/stream`);
    assert.equal(noTopic.status, 404);
    const missing = (await noTopic.json()) as { error: { code: string; message: string } };
    assert.equal(missing.error.code, 'not_found');
    assert.match(missing.error.message, /There is no topic "nope"/);
    const badId = await fetch(`${base}/topics/t/stream`, { headers: { 'last-event-id': 'x' } });
    assert.equal(badId.status, 400);
    const bad = (await badId.json()) as { error: { code: string; message: string } };
    assert.equal(bad.error.code, 'bad_request');
    assert.match(bad.error.message, /Last-Event-ID/);
  });

  test('/ redirects to the dashboard', async () => {
    const res = await fetch(`${base}/`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(new URL(res.headers.get('location')!, `${base}/`).pathname, '/dashboard/');
  });
});

describe('bearer token', () => {
  test('every route but /livez and /readyz needs it; compared exactly', async () => {
    process.env.ROWCAST_TEST_HTTP_TOKEN = 's3cret-token-for-tests';
    const secured = await startTestRowcast(db.url, {
      http: { port: 0, host: '127.0.0.1', token: { env: 'ROWCAST_TEST_HTTP_TOKEN' } },
    });
    try {
      const url = secured.httpUrl!;
      assert.equal((await fetch(`${url}/livez`)).status, 200);
      await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, '/readyz without a token');

      const missing = await fetch(`${url}/topics/t/stream`);
      assert.equal(missing.status, 401);
      assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
      const body = (await missing.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'unauthorized');
      assert.match(body.error.message, /Authorization: Bearer/);
      assert.ok(!JSON.stringify(body).includes('s3cret'), 'the token is never echoed');

      assert.equal(
        (await fetch(`${url}/topics/t/stream`, { headers: { authorization: 'Bearer s3cret-token-for-test' } })).status,
        401,
      );
      assert.equal(
        (await fetch(`${url}/topics/t/stream`, { headers: { authorization: 's3cret-token-for-tests' } })).status,
        401,
      );
      assert.equal((await fetch(`${url}/nope`)).status, 401, 'unknown routes do not tell whether they exist');

      const stream = await openSse(`${url}/topics/t/stream`, { authorization: 'Bearer s3cret-token-for-tests' });
      assert.equal(stream.res.status, 200);
      assert.match(stream.res.headers.get('content-type') ?? '', /^text\/event-stream/);
      await stream.close();
    } finally {
      await secured.stop();
      delete process.env.ROWCAST_TEST_HTTP_TOKEN;
    }
    await assert.rejects(fetch(`${secured.httpUrl}/livez`), 'stopped: the server is closed');
  });
});

/** A GET with the Host header as given (a browser page on a DNS-rebinding name sends its own name here). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { host } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('without a token', () => {
  test('a non-loopback address fails the start unless the operator allows it explicitly', async () => {
    await assert.rejects(startTestRowcast(db.url, { http: { port: 0, host: '0.0.0.0' } }), (err: Error) =>
      /runtime\.http\.host "0\.0\.0\.0".*runtime\.http\.token.*runtime\.http\.allowUnauthenticated: true/s.test(
        err.message,
      ),
    );
    const open = await startTestRowcast(db.url, { http: { port: 0, host: '0.0.0.0', allowUnauthenticated: true } });
    try {
      assert.equal((await fetch(`${open.httpUrl}/api/overview`)).status, 200);
    } finally {
      await open.stop();
    }
    process.env.ROWCAST_TEST_HTTP_TOKEN = 'another-token-for-tests';
    const secured = await startTestRowcast(db.url, {
      http: { port: 0, host: '0.0.0.0', token: { env: 'ROWCAST_TEST_HTTP_TOKEN' } },
    });
    try {
      assert.equal(
        (
          await fetch(`${secured.httpUrl}/api/overview`, {
            headers: { authorization: 'Bearer another-token-for-tests' },
          })
        ).status,
        200,
      );
    } finally {
      await secured.stop();
      delete process.env.ROWCAST_TEST_HTTP_TOKEN;
    }
  });

  test('on loopback, a request whose Host is not a loopback or configured name is refused (DNS rebinding)', async () => {
    const port = new URL(base).port;
    for (const host of [
      'attacker.example',
      `attacker.example:${port}`,
      `127.0.0.1.attacker.example:${port}`,
      'localhost.attacker.example',
    ]) {
      const res = await getWithHost(`${base}/api/overview`, host);
      assert.equal(res.status, 403, `Host: ${host}`);
      assert.match(res.body, /runtime\.http\.allowedHosts/, 'the error names the fix');
    }
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      'LOCALHOST',
      `[::1]:${port}`,
      '127.0.0.2',
      'localhost.',
    ]) {
      assert.equal((await getWithHost(`${base}/api/overview`, host)).status, 200, `Host: ${host}`);
    }
    assert.equal((await getWithHost(`${base}/livez`, 'attacker.example')).status, 200, 'health checks stay open');

    const named = await startTestRowcast(db.url, {
      http: {
        port: 0,
        host: '127.0.0.1',
        allowedHosts: ['rowcast.internal'],
        publicUrl: 'https://hooks.example.com/rowcast',
      },
    });
    try {
      const url = named.httpUrl!;
      assert.equal(
        (await getWithHost(`${url}/api/overview`, 'rowcast.internal:8080')).status,
        200,
        'a configured name',
      );
      assert.equal((await getWithHost(`${url}/api/overview`, 'hooks.example.com')).status, 200, "publicUrl's name");
      assert.equal((await getWithHost(`${url}/api/overview`, 'attacker.example')).status, 403);
    } finally {
      await named.stop();
    }
  });
});

describe('readiness while draining', () => {
  test('/readyz is 503 naming the failing check; streams get keepalives and end on close', async () => {
    let draining = false;
    const server = await startHttpServer({
      pool: db.pool,
      log: createLogger('silent'),
      settings: { port: 0, host: '127.0.0.1' },
      isReady: async () => ({ ready: !draining, checks: { accepting: draining ? 'draining: shutting down' : true } }),
      routes: [topicStreamRoutes({ keepAlive: 200 })],
    });
    try {
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
      const stream = await openSse(`${server.url}/topics/t/stream`);
      await eventually(() => stream.comments.includes('keepalive'), 'a keepalive comment');
      draining = true;
      const res = await fetch(`${server.url}/readyz`);
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), {
        status: 'not ready',
        checks: { database: true, migrations: true, accepting: 'draining: shutting down' },
      });
      await server.close();
      await eventually(() => stream.ended, 'the stream to end when the server closes', 10_000);
    } finally {
      await server.close();
    }
  });

  test('runtime.stop() makes the runtime unready and closes the server', async () => {
    const other = await startTestRowcast(db.url, { http: { port: 0, host: '127.0.0.1' } });
    const url = other.httpUrl!;
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, '/readyz 200');
    const stream = await openSse(`${url}/topics/t/stream`);
    const stopping = other.stop();
    assert.equal(other.ready, false);
    await stopping;
    await eventually(() => stream.ended, 'the stream to end on stop');
    await assert.rejects(fetch(`${url}/readyz`));
  });
});

describe('GET /topics/:name/stream', () => {
  const received: SseEvent[] = [];

  test('unknown topic: 404 naming it and the known topics', async () => {
    const res = await fetch(`${base}/topics/nope/stream`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as {
      error: { code: string; message: string };
      topic: string;
      knownTopics: string[];
    };
    assert.equal(body.topic, 'nope');
    assert.deepEqual(body.knownTopics, ['big', 't', 'u', 'v']);
    assert.equal(body.error.code, 'not_found');
    assert.match(body.error.message, /no topic "nope"; known topics: big, t, u, v/);
  });

  test('a malformed Last-Event-ID is a 400', async () => {
    const res = await fetch(`${base}/topics/t/stream`, { headers: { 'last-event-id': 'abc' } });
    assert.equal(res.status, 400);
  });

  test('live: captured rows arrive as envelope events with increasing ids', async () => {
    await db.pool.query(`INSERT INTO t_rows VALUES (0, 'before the stream')`);
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM rowcast.log_messages('t', 0, 9223372036854775807)`))
          .rows[0].n === 1,
      'the first row routed',
    );
    const stream = await openSse(`${base}/topics/t/stream`);
    try {
      assert.equal(stream.res.status, 200);
      for (let i = 1; i <= 5; i++) await db.pool.query(`INSERT INTO t_rows VALUES ($1, $2)`, [i, `row ${i}`]);
      await eventually(() => stream.events.length >= 5, 'five events', 20_000);
      assert.equal((await drainTo(stream, 't')).length, 5, 'only messages after the stream opened');
      received.push(...stream.events);
    } finally {
      await stream.close();
    }
    const ids = received.map((e) => BigInt(e.id!));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, 'ids increase');
    const { rows } = await db.pool.query(
      `SELECT seq::text AS seq, id::text AS id FROM rowcast.log_messages('t', 0, 9223372036854775807) ORDER BY seq`,
    );
    const bySeq = new Map(rows.map((r) => [r.seq, r.id]));
    received.forEach((e, i) => {
      assert.equal(e.event, 'message');
      const envelope = JSON.parse(e.data);
      assert.equal(envelope.topic, 't');
      assert.equal(envelope.id, bySeq.get(e.id!), 'id: is the seq of that message');
      assert.equal(envelope.body.op, 'INSERT');
      assert.equal(envelope.body.after.id, i + 1);
      assert.equal(envelope.body.after.note, `row ${i + 1}`);
      assert.deepEqual(envelope.attributes, { op: 'INSERT', schema: 'public', table: 't_rows', capture: 't-rows' });
      assert.ok(!e.data.includes('\n'));
    });
  });

  test('resume: Last-Event-ID replays what came after it, without duplicates, then continues live', async () => {
    assert.ok(received.length === 5);
    const stream = await openSse(`${base}/topics/t/stream`, { 'last-event-id': received[1]!.id! });
    try {
      await eventually(() => stream.events.length >= 3, 'the replayed events');
      assert.deepEqual(
        stream.events.map((e) => e.id),
        received.slice(2).map((e) => e.id),
      );
      assert.deepEqual(
        stream.events.map((e) => e.data),
        received.slice(2).map((e) => e.data),
      );
      await db.pool.query(`INSERT INTO t_rows VALUES (6, 'row 6')`);
      await eventually(() => stream.events.length >= 4, 'the live event after the replay', 20_000);
      assert.equal((await drainTo(stream, 't')).length, 4);
      assert.equal(JSON.parse(stream.events[3]!.data).body.after.id, 6);
    } finally {
      await stream.close();
    }
    // EventSource reconnects may pass the id in the query string instead.
    const viaQuery = await openSse(`${base}/topics/t/stream?lastEventId=${received[3]!.id}`);
    try {
      await eventually(() => viaQuery.events.length >= 2, 'replay via ?lastEventId=');
      await drainTo(viaQuery, 't');
      assert.deepEqual(
        viaQuery.events.map((e) => JSON.parse(e.data).body.after.id),
        [5, 6],
      );
    } finally {
      await viaQuery.close();
    }
  });

  // seq is sent as text: a read ordered by the text would put "100" before "99" and the client, past 100, skip 99.
  test('many messages in one read come in numeric seq order, none skipped (across 9 → 10 and 99 → 100)', async () => {
    const stream = await openSse(`${base}/topics/t/stream`);
    try {
      const { rows } = await db.pool.query(`SELECT coalesce(max(seq), 0)::int AS s FROM rowcast.messages`);
      assert.ok(rows[0].s < 90, 'the rows below cross seq 100');
      await db.pool.query(`INSERT INTO t_rows SELECT 1000 + g, 'bulk' FROM generate_series(1, 150) g`);
      await eventually(() => stream.events.length >= 150, '150 events', 20_000);
      const seqs = stream.events.map((e) => Number(e.id));
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        'in seq order',
      );
      assert.deepEqual(
        stream.events.map((e) => JSON.parse(e.data).body.after.id).sort((a, b) => a - b),
        Array.from({ length: 150 }, (_, i) => 1001 + i),
      );
    } finally {
      await stream.close();
    }
  });

  test('a lower seq that commits later is neither skipped nor overtaken', async () => {
    const stream = await openSse(`${base}/topics/u/stream`);
    const early = await db.pool.connect();
    const late = await db.pool.connect();
    try {
      await early.query('BEGIN');
      const a = await early.query(
        `INSERT INTO rowcast.messages (topic, body) VALUES ('u', '{"n":"a"}') RETURNING seq::text AS seq`,
      );
      await late.query('BEGIN');
      const b = await late.query(
        `INSERT INTO rowcast.messages (topic, body) VALUES ('u', '{"n":"b"}') RETURNING seq::text AS seq`,
      );
      await late.query('COMMIT');
      assert.ok(BigInt(b.rows[0].seq) > BigInt(a.rows[0].seq));
      await pollerTicks(2); // the poller has looked (twice) since b committed
      assert.equal(stream.events.length, 0, 'nothing while a lower seq is uncommitted');
      await early.query('COMMIT');
      await eventually(() => stream.events.length >= 2, 'both messages once the first commits');
      await drainTo(stream, 'u'); // and had b gone out early, it would come before a here
      assert.deepEqual(
        stream.events.map((e) => e.id),
        [a.rows[0].seq, b.rows[0].seq],
      );
      assert.deepEqual(
        stream.events.map((e) => JSON.parse(e.data).body.n),
        ['a', 'b'],
      );
    } finally {
      await early.query('ROLLBACK').catch(() => {});
      early.release();
      late.release();
      await stream.close();
    }
  });

  test('the same when the later seq was written by the older transaction (a txid filter alone would skip the lower seq)', async () => {
    const stream = await openSse(`${base}/topics/v/stream`);
    const older = await db.pool.connect();
    const younger = await db.pool.connect();
    try {
      await older.query('BEGIN');
      const olderXid = (await older.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x;
      await younger.query('BEGIN');
      const a = await younger.query(
        `INSERT INTO rowcast.messages (topic, body) VALUES ('v', '"a"') RETURNING seq::text AS seq, pg_current_xact_id()::text AS txid`,
      );
      const b = await older.query(
        `INSERT INTO rowcast.messages (topic, body) VALUES ('v', '"b"') RETURNING seq::text AS seq, pg_current_xact_id()::text AS txid`,
      );
      assert.ok(BigInt(b.rows[0].txid) < BigInt(a.rows[0].txid) && b.rows[0].txid === olderXid);
      assert.ok(BigInt(b.rows[0].seq) > BigInt(a.rows[0].seq));
      await older.query('COMMIT');
      await pollerTicks(2);
      assert.equal(
        stream.events.length,
        0,
        'b is committed and older than every running transaction, yet a (lower seq) is still open',
      );
      await younger.query('COMMIT');
      await eventually(() => stream.events.length >= 2, 'both messages');
      await drainTo(stream, 'v');
      assert.deepEqual(
        stream.events.map((e) => e.id),
        [a.rows[0].seq, b.rows[0].seq],
      );
      // A non-JSON body is a JSON string in the envelope.
      assert.deepEqual(
        stream.events.map((e) => JSON.parse(e.data).body),
        ['a', 'b'],
      );
    } finally {
      await older.query('ROLLBACK').catch(() => {});
      await younger.query('ROLLBACK').catch(() => {});
      older.release();
      younger.release();
      await stream.close();
    }
  });

  test('a client that stops reading is disconnected, and resumes with Last-Event-ID', async () => {
    const count = 3000;
    // A raw request that stops reading: the server's socket buffer fills up.
    const { status, lastId, res } = await new Promise<{
      status: number;
      lastId: () => string | undefined;
      res: import('node:http').IncomingMessage;
    }>((resolve, reject) => {
      const req = httpRequest(`${base}/topics/big/stream`, (res) => {
        let text = '';
        let paused = false;
        res.setEncoding('utf8');
        // Reads until the first event, then stops reading.
        res.on('data', (chunk: string) => {
          text += chunk;
          if (!paused && /\n\n[^]*\n\n/.test(text)) {
            paused = true;
            res.pause();
          }
        });
        const lastId = () => [...text.matchAll(/^id: (\d+)\n[^]*?\n\n/gm)].at(-1)?.[1];
        resolve({ status: res.statusCode!, lastId, res });
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    const ended = new Promise<void>((resolve) => {
      res.on('close', resolve);
      res.on('error', () => resolve());
    });
    // Once the client has received something it is live (a client replaying a backlog is paced by its socket instead).
    await db.pool.query(`INSERT INTO rowcast.messages (topic, body) VALUES ('big', '{"n":0}')`);
    await eventually(() => lastId() !== undefined, 'the first event');
    await db.pool.query(
      `INSERT INTO rowcast.messages (topic, body) SELECT 'big', json_build_object('n', g, 'pad', repeat('x', 8000))::text FROM generate_series(1, $1) g`,
      [count],
    );
    // ~24 MB: more than loopback buffers hold, so the server sees the client fall behind and cuts it off: its end of
    // the connection leaves ESTABLISHED (the FIN waits behind the data the client has not read yet).
    const serverPort = Number(new URL(base).port);
    const clientPort = res.socket.localPort!;
    await eventually(() => serverClosed(serverPort, clientPort), 'the server to close the slow client', 60_000);
    res.resume();
    let timer: NodeJS.Timeout | undefined;
    const disconnected = await Promise.race([
      ended.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 30_000))),
    ]);
    clearTimeout(timer);
    assert.ok(disconnected, 'the slow client was disconnected');
    const last = lastId()!;
    const got: number = JSON.parse(
      (await db.pool.query(`SELECT body FROM rowcast.messages WHERE seq = $1`, [last])).rows[0].body,
    ).n;
    assert.ok(got < count, `disconnected before the end (had ${got} of ${count})`);
    const resumed = await openSse(`${base}/topics/big/stream`, { 'last-event-id': last });
    try {
      await eventually(() => resumed.events.length >= count - got, 'the rest after resuming', 60_000);
      const ns = resumed.events.map((e) => JSON.parse(e.data).body.n as number);
      assert.equal(ns[0], got + 1);
      assert.equal(ns.at(-1), count);
      assert.equal(new Set(ns).size, ns.length);
    } finally {
      await resumed.close();
    }
  });

  test('a test message sent to one subscription of the topic is not streamed: its subscription has it alone', async () => {
    const stream = await openSse(`${base}/topics/u/stream`);
    try {
      assert.equal(stream.res.status, 200);
      const id = await sendTestMessage(db.pool, 'u-hook');
      assert.deepEqual(await drainTo(stream, 'u'), []);
      const { rows } = await db.pool.query(`SELECT recipient FROM rowcast.messages WHERE id = $1`, [id]);
      assert.deepEqual(rows, [{ recipient: 'u-hook' }]);
    } finally {
      await stream.close();
    }
  });
});

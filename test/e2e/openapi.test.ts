import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fetch } from 'undici';
import { parse } from 'yaml';
import { type HttpServer, startHttpServer } from '../../src/app/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const TOKEN = 'openapi-test-token';
let db: TestDatabase;
let server: HttpServer;

before(async () => {
  db = await createTestDatabase();
  server = await startHttpServer({
    pool: db.pool,
    log: createLogger('silent'),
    settings: { port: 0, host: '127.0.0.1', token: TOKEN },
    isReady: async () => ({ ready: true, checks: {} }),
  });
});

after(async () => {
  await server?.close();
  await db?.drop();
});

/** fastify's "/api/deliveries/:id" and "/dashboard/assets/*" as OpenAPI paths. */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{path}');
const served = () => server.routes.filter((r) => r.method !== 'HEAD');

test('every route the server serves is in docs/openapi.yaml, and every documented route is served', () => {
  const doc = parse(readFileSync('docs/openapi.yaml', 'utf8')) as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
  };
  assert.equal(doc.openapi, '3.1.0');
  const documented = new Set(
    Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)),
  );
  const routes = new Set(served().map((r) => `${r.method} ${openApiPath(r.url)}`));
  assert.deepEqual(
    [...routes].filter((r) => !documented.has(r)),
    [],
    'served but not documented',
  );
  assert.deepEqual(
    [...documented].filter((r) => !routes.has(r)),
    [],
    'documented but not served',
  );
  // What the docs call public is exactly what the server serves without the token.
  for (const r of served()) {
    const op = doc.paths[openApiPath(r.url)]![r.method.toLowerCase()] as { security?: unknown[] };
    assert.equal(
      Array.isArray(op.security) && op.security.length === 0,
      r.public,
      `${r.method} ${r.url}: security in the docs`,
    );
  }
});

test('every route but the public ones answers 401 without the token, and gives away no data', async () => {
  const secured = served().filter((r) => !r.public);
  assert.ok(secured.length >= 25, `only ${secured.length} secured routes?`);
  for (const r of secured) {
    const url = server.url + r.url.replace(/:name/g, 'x').replace(/:id/g, '1').replace(/:\w+/g, 'x');
    for (const headers of [{}, { authorization: 'Bearer not-the-token' }]) {
      const res = await fetch(url, { method: r.method, headers });
      assert.equal(res.status, 401, `${r.method} ${r.url}`);
      // One error shape everywhere: { error: { code, message } }.
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.deepEqual(Object.keys(body), ['error'], `${r.method} ${r.url}`);
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message'], `${r.method} ${r.url}`);
      assert.equal(body.error.code, 'unauthorized', `${r.method} ${r.url}`);
      assert.match(body.error.message, /runtime\.http\.token/, `${r.method} ${r.url}`);
    }
  }
});

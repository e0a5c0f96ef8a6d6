import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { awsSchema } from '../../src/config/aws-schema.js';
import { InvocationSnsEndpoint } from '../../src/functions/invocation-sns-endpoint.js';
import { createLogger } from '../../src/observability/logger.js';

// The pool is never used: environment() and slots need no database.
const pool = new pg.Pool({ max: 1 });
const endpoint = new InvocationSnsEndpoint(pool, awsSchema.parse({ region: 'eu-west-3' }), createLogger('silent'));
let home: string;

before(async () => {
  await endpoint.listen();
  home = mkdtempSync(path.join(tmpdir(), 'rowcast-home-'));
});

after(async () => {
  await endpoint.close();
  await pool.end();
  rmSync(home, { recursive: true, force: true });
});

test("each slot has its own endpoint URL, given to the SDKs with the config's region", () => {
  const a = endpoint.slot();
  const b = endpoint.slot();
  assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+\/_invocation\/[0-9a-f]{64}\/$/);
  assert.notEqual(a.url, b.url);
  const env = endpoint.environment(a, { HOME: home });
  assert.equal(env.AWS_ENDPOINT_URL_SNS, a.url);
  assert.equal(env.AWS_REGION, 'eu-west-3');
  assert.equal(env.AWS_DEFAULT_REGION, 'eu-west-3');
  a.close();
  b.close();
});

test('placeholder credentials only when the handler has no source of credentials', () => {
  const slot = endpoint.slot();
  assert.ok(endpoint.environment(slot, { HOME: home }).AWS_ACCESS_KEY_ID, 'nothing: placeholders');
  for (const inherited of [
    { AWS_ACCESS_KEY_ID: 'AKIDREAL' },
    { AWS_PROFILE: 'prod' },
    { AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.2/creds' },
  ]) {
    assert.equal(
      endpoint.environment(slot, { HOME: home, ...inherited }).AWS_ACCESS_KEY_ID,
      undefined,
      JSON.stringify(inherited),
    );
  }
  mkdirSync(path.join(home, '.aws'));
  writeFileSync(path.join(home, '.aws', 'credentials'), '[default]\n');
  assert.equal(endpoint.environment(slot, { HOME: home }).AWS_ACCESS_KEY_ID, undefined, 'a shared credentials file');
  slot.close();
});

/** What rowcast prints of settings and URLs: secrets replaced, everything else as it was. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { redactCredentials, redactSecrets } from '../../src/observability/redact.js';

describe('redactCredentials', () => {
  test('the password of a URL and credential-like query parameters, anywhere in a text', () => {
    assert.equal(
      redactCredentials('https://hook:s3cr%40t@example.com/x?token=abc&page=2'),
      'https://hook:***@example.com/x?token=***&page=2',
    );
    assert.equal(
      redactCredentials('failed: amqp://guest:pw@127.0.0.1:5672 (refused)'),
      'failed: amqp://guest:***@127.0.0.1:5672 (refused)',
    );
    assert.equal(redactCredentials('http://h/x?page=1&api_key=zz#frag'), 'http://h/x?page=1&api_key=***#frag');
  });

  test('text without credentials is unchanged', () => {
    for (const text of [
      'https://example.com/hooks/rowcast',
      'mailto:ops@example.com',
      'nats:rowcast.orders',
      'amqp:(default exchange)/q',
      'redis://127.0.0.1:6379',
      'user@example.com: ok',
    ]) {
      assert.equal(redactCredentials(text), text);
    }
  });
});

describe('redactSecrets', () => {
  test('secret-named keys, header values (but not ${NAME} references) and URL passwords; the rest untouched', () => {
    const settings = {
      format: 'envelope',
      maxConcurrency: 32,
      headers: { authorization: 'Bearer abc', 'x-api-key': '${API_KEY}', 'x-tenant': 'acme' },
      options: {
        url: 'amqp://guest:pw@127.0.0.1:5672',
        smtp: { host: 'smtp.example.com', auth: { user: 'rowcast', pass: 'hunter2' } },
        credentials: { user: 'u', password: 'p', token: { env: 'NATS_TOKEN' } },
        to: ['ops@example.com'],
      },
    };
    assert.deepEqual(redactSecrets(settings), {
      format: 'envelope',
      maxConcurrency: 32,
      headers: { authorization: '***', 'x-api-key': '${API_KEY}', 'x-tenant': '***' },
      options: {
        url: 'amqp://guest:***@127.0.0.1:5672',
        smtp: { host: 'smtp.example.com', auth: { user: 'rowcast', pass: '***' } },
        credentials: { user: 'u', password: '***', token: { env: 'NATS_TOKEN' } },
        to: ['ops@example.com'],
      },
    });
    assert.equal(settings.options.smtp.auth.pass, 'hunter2', 'the input is not modified');
    assert.deepEqual(redactSecrets(['a', 1, null]), ['a', 1, null]);
  });
});

describe('createLogger', () => {
  test('redacts secret-named fields and URL credentials inside logged strings', () => {
    let out = '';
    const log = createLogger('debug', { write: (line: string) => void (out += line) });
    log.warn(
      {
        error: 'connect failed: amqp://guest:pw-in-error@127.0.0.1:5672',
        details: { endpoint: 'https://hook:pw-nested@example.com/x?token=tok-in-query', attempt: 2 },
        password: 'pw-field',
        token: 'tok-field',
        settings: { pass: 'pw-pass', user: 'rowcast' },
        headers: { authorization: 'Bearer tok-header' },
      },
      'delivery attempt failed',
    );
    for (const secret of ['pw-in-error', 'pw-nested', 'tok-in-query', 'pw-field', 'tok-field', 'pw-pass', 'tok-header'])
      assert.ok(!out.includes(secret), `${secret} in ${out}`);
    const line = JSON.parse(out);
    assert.equal(line.error, 'connect failed: amqp://guest:***@127.0.0.1:5672');
    assert.equal(line.details.endpoint, 'https://hook:***@example.com/x?token=***');
    assert.equal(line.details.attempt, 2);
    assert.equal(line.settings.user, 'rowcast');
    assert.equal(line.msg, 'delivery attempt failed');
  });
});

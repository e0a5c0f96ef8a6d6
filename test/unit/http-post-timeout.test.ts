import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { mock, test } from 'node:test';
import { Agent } from 'undici';
import { httpPost, PostTimeoutError } from '../../src/delivery/sinks/http/http-post.js';

/**
 * A hanging subscriber: the attempt is given up at its timeout, not before, counted on rowcast's timer (mocked, so
 * the machine's speed plays no part). Fault 07 shows the same against a rowcast child process, by order of events.
 */
test('a POST to a subscriber that never answers is given up exactly at its timeout', async () => {
  const server = createServer(() => {}); // reads the request, never answers
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const agent = new Agent();
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const arrived = once(server, 'request');
    const outcome: { settled?: unknown } = {};
    const settled = () => outcome.settled; // read afresh: an assertion's narrowing must not outlive the tick
    const post = httpPost(
      agent,
      { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, path: '/' },
      { headers: {}, body: '{}', timeoutMs: 500, signal: new AbortController().signal },
      () => false,
    ).then(
      () => (outcome.settled = 'answered'),
      (err: Error) => (outcome.settled = err),
    );
    await arrived;
    mock.timers.tick(499);
    for (let i = 0; i < 10; i++) await turn();
    assert.equal(settled(), undefined, 'still waiting 1 ms before the timeout');
    mock.timers.tick(1);
    await post;
    const err = settled();
    assert.ok(err instanceof PostTimeoutError, `given up by the timeout (${String(err)})`);
    assert.match(err.message, /timed out after 500 ms/);
  } finally {
    mock.timers.reset();
    server.closeAllConnections();
    server.close();
    await agent.close();
  }
});

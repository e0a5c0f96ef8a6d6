import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { subscriptionSchema } from '../../src/config/subscription-schema.js';
import { BUILT_IN_SINKS, createSinks, type SinkContext } from '../../src/delivery/sinks/sink-registry.js';

// The delivery worker knows sinks only through the registry: every protocol the config accepts must have one there.

function context(): SinkContext & { pool: pg.Pool } {
  // Never connected: making a sink opens nothing.
  return {
    pool: new pg.Pool({ connectionString: 'postgres://127.0.0.1:1/none' }),
    allowPrivateEndpoints: false,
    onInvocationQueued: () => {},
    snsEnvelopes: () => null,
  };
}

test('every protocol of the config schema has a built-in sink', async () => {
  const accepted = subscriptionSchema.options.flatMap((member) => {
    const protocol = member.shape.protocol;
    return 'options' in protocol ? [...protocol.options] : [...protocol.values];
  });
  const ctx = context();
  const sinks = createSinks(BUILT_IN_SINKS, ctx);
  try {
    assert.deepEqual([...sinks.keys()].sort(), [...new Set(accepted)].sort());
    // Two protocols of one sink share it (one connection pool for http and https).
    assert.equal(sinks.get('http'), sinks.get('https'));
  } finally {
    for (const sink of new Set(sinks.values())) await sink.close();
    await ctx.pool.end();
  }
});

test('a protocol registered twice is refused', () => {
  const log = BUILT_IN_SINKS.find((f) => f.protocols.includes('log'))!;
  assert.throws(() => createSinks([log, log], context()), /two sinks serve protocol "log"/);
});

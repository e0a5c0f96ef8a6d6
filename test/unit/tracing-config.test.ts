import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runtimeSchema } from '../../src/config/runtime-schema.js';
import { tracesUrl } from '../../src/observability/tracing.js';

test('tracing is off unless an endpoint is configured', () => {
  assert.equal(tracesUrl({}, {}), null);
  assert.equal(tracesUrl(runtimeSchema.parse({}).tracing, {}), null);
});

test('OTel conventions: the traces endpoint as is, the general one with /v1/traces', () => {
  assert.equal(tracesUrl({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' }), 'http://c:4318/custom');
  assert.equal(tracesUrl({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }), 'http://c:4318/v1/traces');
  assert.equal(
    tracesUrl(
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/v1/traces' },
    ),
    'http://t:4318/v1/traces',
  );
});

test('runtime.tracing.endpoint overrides the variables; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off', () => {
  assert.equal(
    tracesUrl({ endpoint: 'http://cfg:4318' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' }),
    'http://cfg:4318/v1/traces',
  );
  assert.equal(tracesUrl({ endpoint: 'http://cfg:4318/v1/traces' }, {}), 'http://cfg:4318/v1/traces');
  assert.equal(tracesUrl({ endpoint: 'http://cfg:4318' }, { OTEL_SDK_DISABLED: 'true' }), null);
  assert.equal(tracesUrl({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318', OTEL_TRACES_EXPORTER: 'none' }), null);
  assert.equal(
    tracesUrl({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318', OTEL_TRACES_EXPORTER: 'otlp' }),
    'http://env:4318/v1/traces',
  );
});

test('bad settings get a clear error', () => {
  const endpoint = runtimeSchema.safeParse({ tracing: { endpoint: 'collector:4318' } });
  assert.equal(endpoint.success, false);
  assert.match(endpoint.error!.issues[0]!.message, /OTLP\/HTTP collector/);
  assert.equal(runtimeSchema.safeParse({ tracing: { sampleRatio: 2 } }).success, false);
  assert.equal(runtimeSchema.safeParse({ tracing: { endpont: 'http://c:4318' } }).success, false);
});

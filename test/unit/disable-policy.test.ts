import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/admin/config/load-config.js';
import { RowcastError } from '../../src/model/errors.js';
import { decideDisable, formatSpan } from '../../src/model/disable-policy.js';
import { summarize } from '../../src/delivery/endpoint-health.js';

const DAY = 86_400_000;
const now = new Date('2026-12-04T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms);

describe('decideDisable', () => {
  test('no policy, or a healthy endpoint, is never disabled', () => {
    assert.deepEqual(decideDisable({ failingSince: ago(30 * DAY), deadInRow: 1000 }, null, now), { disable: false });
    assert.deepEqual(decideDisable({ failingSince: ago(30 * DAY), deadInRow: 1000 }, {}, now), { disable: false });
    assert.deepEqual(
      decideDisable({ failingSince: null, deadInRow: 0 }, { failingFor: 1000, deadDeliveries: 1 }, now),
      { disable: false },
    );
  });

  test('failingFor trips once the endpoint has failed that long, not before', () => {
    const policy = { failingFor: 5 * DAY, deadDeliveries: null };
    assert.equal(decideDisable({ failingSince: ago(5 * DAY - 1), deadInRow: 0 }, policy, now).disable, false);
    const d = decideDisable({ failingSince: ago(5 * DAY + 3_600_000), deadInRow: 0 }, policy, now);
    assert.ok(d.disable);
    assert.equal(d.cause, 'failing_for');
    assert.equal(
      d.reason,
      'disabled by disableAfter: every attempt failed for 5d 1h since 2026-11-29T11:00:00.000Z (limit 5d)',
    );
  });

  test('deadDeliveries trips at that many dead deliveries in a row', () => {
    const policy = { failingFor: null, deadDeliveries: 3 };
    assert.equal(decideDisable({ failingSince: ago(1000), deadInRow: 2 }, policy, now).disable, false);
    const d = decideDisable({ failingSince: ago(1000), deadInRow: 3 }, policy, now);
    assert.ok(d.disable);
    assert.equal(d.cause, 'dead_deliveries');
    assert.match(
      d.reason,
      /^disabled by disableAfter: 3 deliveries in a row went dead \(limit 3\), failing since 2026-12-04T11:59:59.000Z$/,
    );
  });

  test('with both limits, whichever is reached first', () => {
    const policy = { failingFor: DAY, deadDeliveries: 100 };
    assert.equal(
      (decideDisable({ failingSince: ago(2 * DAY), deadInRow: 5 }, policy, now) as { cause: string }).cause,
      'failing_for',
    );
    assert.equal(
      (decideDisable({ failingSince: ago(1000), deadInRow: 100 }, policy, now) as { cause: string }).cause,
      'dead_deliveries',
    );
    assert.equal(decideDisable({ failingSince: ago(1000), deadInRow: 99 }, policy, now).disable, false);
  });

  test('spans read as people write them', () => {
    assert.equal(formatSpan(250), '250ms');
    assert.equal(formatSpan(90_000), '1m 30s');
    assert.equal(formatSpan(5 * DAY), '5d');
    assert.equal(formatSpan(2 * 3_600_000 + 5 * 60_000 + 7000), '2h 5m');
  });
});

test('a batch of outcomes counts, per subscription, only what came after its last success', () => {
  assert.deepEqual(
    summarize([
      { subscription: 'a', state: 'dead' },
      { subscription: 'b', state: 'pending' },
      { subscription: 'a', state: 'done' },
      { subscription: 'a', state: 'pending' },
      { subscription: 'a', state: 'dead' },
      { subscription: 'c', state: 'done' },
      { subscription: 'b', state: 'dead' },
    ]),
    [
      { name: 'a', reset: true, failed: true, dead: 1 },
      { name: 'b', reset: false, failed: true, dead: 1 },
      { name: 'c', reset: true, failed: false, dead: 0 },
    ],
  );
});

describe('disableAfter in the config', () => {
  const config = (disableAfter: unknown) => ({
    topics: { orders: {} },
    subscriptions: { hook: { topic: 'orders', protocol: 'https', endpoint: 'https://example.com/hook', disableAfter } },
  });
  const parsed = (v: unknown) =>
    (parseConfig(config(v), 'rowcast.config.ts').subscriptions.hook as { disableAfter?: unknown }).disableAfter;
  const problem = (v: unknown): string => {
    try {
      parseConfig(config(v), 'rowcast.config.ts');
    } catch (err) {
      assert.ok(err instanceof RowcastError);
      return err.message;
    }
    return assert.fail('accepted');
  };

  test('off by default; a duration is failingFor; the object takes either limit or both', () => {
    assert.equal(
      (
        parseConfig({
          topics: { orders: {} },
          subscriptions: { hook: { topic: 'orders', protocol: 'log', options: {} } },
        }).subscriptions.hook as { disableAfter?: unknown }
      ).disableAfter,
      undefined,
    );
    assert.deepEqual(parsed('5d'), { failingFor: 5 * DAY, deadDeliveries: null });
    assert.deepEqual(parsed({ deadDeliveries: 100 }), { failingFor: null, deadDeliveries: 100 });
    assert.deepEqual(parsed({ failingFor: '12h', deadDeliveries: 10 }), {
      failingFor: 12 * 3_600_000,
      deadDeliveries: 10,
    });
  });

  test('mistakes are named with the fix', () => {
    assert.match(
      problem({}),
      /subscriptions\.hook\.disableAfter: give failingFor \(e\.g\. "5d"\), deadDeliveries \(e\.g\. 100\), or both/,
    );
    assert.match(problem('soon'), /subscriptions\.hook\.disableAfter: .*"5d"/);
    assert.match(problem({ deadDeliveries: 0 }), /subscriptions\.hook\.disableAfter.*at least 1|deadDeliveries/);
    assert.match(problem('500ms'), /too short to tell a failing endpoint from a blip; write at least "1s"/);
    assert.match(problem({ failingFor: '5d', after: 3 }), /subscriptions\.hook\.disableAfter/);
  });
});

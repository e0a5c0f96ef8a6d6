import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freeSlots, givesSlotsBack, resultsLag, shareSlots, type SlotGroup } from '../../src/model/slot-sharing.js';

const groups = (n: number, room = 100, backlogged = false): SlotGroup[] =>
  Array.from({ length: n }, (_, i) => ({ group: `g${i}`, room, backlogged }));
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe('shareSlots', () => {
  test('equal groups get equal shares', () => {
    assert.deepEqual(
      [...shareSlots(groups(4), 40, 0)],
      [
        ['g0', 10],
        ['g1', 10],
        ['g2', 10],
        ['g3', 10],
      ],
    );
  });

  test('never more than the free slots in all, nor more than a group has room for', () => {
    for (let free = -3; free <= 50; free++) {
      for (const n of [1, 2, 3, 7, 60]) {
        for (const room of [0, 1, 5, 100]) {
          for (const rotation of [0, 1, 5]) {
            const got = shareSlots(groups(n, room, rotation % 2 === 1), free, rotation);
            assert.ok(
              total(got) <= Math.max(0, free),
              `free ${free}, ${n} groups of room ${room}: asked ${total(got)}`,
            );
            for (const v of got.values()) assert.ok(v > 0 && v <= room, `a group asked ${v} with room ${room}`);
          }
        }
      }
    }
  });

  test('no free slots, or no groups: nothing', () => {
    assert.equal(shareSlots(groups(3), 0, 0).size, 0);
    assert.equal(shareSlots(groups(3), -5, 0).size, 0);
    assert.equal(shareSlots([], 10, 0).size, 0);
  });

  test('rounding: the share is rounded down (at least 1); what is left goes to backlogged groups only', () => {
    // 10 over 3: a share of 3 each, 1 left over.
    assert.deepEqual(
      [...shareSlots(groups(3), 10, 0)],
      [
        ['g0', 3],
        ['g1', 3],
        ['g2', 3],
      ],
      'none backlogged: the remainder stays free',
    );
    assert.deepEqual(
      [...shareSlots(groups(3, 100, true), 10, 0)],
      [
        ['g0', 4],
        ['g1', 3],
        ['g2', 3],
      ],
      'backlogged: the first in turn takes it',
    );
  });

  test('more groups than slots: one each, and the rotation gives every group its turn', () => {
    const seen = new Set<string>();
    for (let rotation = 0; rotation < 5; rotation++) {
      const got = shareSlots(groups(10), 2, rotation * 2);
      assert.equal(total(got), 2);
      for (const [g, n] of got) {
        assert.equal(n, 1);
        seen.add(g);
      }
    }
    assert.equal(seen.size, 10, 'after five rounds, all ten groups were asked for');
  });

  test('a group with no room (idle: it holds its limit, or is full) gives its share back to the backlogged ones', () => {
    const got = shareSlots(
      [
        { group: 'full', room: 0, backlogged: true },
        { group: 'small', room: 2, backlogged: false },
        { group: 'busy', room: 100, backlogged: true },
      ],
      30,
      0,
    );
    assert.deepEqual(
      [...got],
      [
        ['small', 2],
        ['busy', 28],
      ],
    );
  });

  test('a busy group cannot starve a quiet one: each gets its share before the backlog takes the rest', () => {
    const got = shareSlots(
      [
        { group: 'busy', room: 1000, backlogged: true },
        { group: 'quiet', room: 1000, backlogged: false },
      ],
      20,
      0,
    );
    assert.deepEqual(
      [...got],
      [
        ['busy', 10],
        ['quiet', 10],
      ],
    );
  });
});

describe('freeSlots', () => {
  const load = {
    concurrency: 10,
    inFlight: 0,
    queued: 0,
    queuedBytes: 0,
    prefetch: 0,
    maxQueued: 100,
    maxQueuedBytes: 1000,
  };
  test('free slots are the concurrency less running and queued items', () => {
    assert.equal(freeSlots(load), 10);
    assert.equal(freeSlots({ ...load, inFlight: 4, queued: 3 }), 3);
    assert.equal(freeSlots({ ...load, inFlight: 10, queued: 2 }), -2);
  });
  test('plus what groups claim ahead, up to the queue bound, and none once the queue holds too many bytes', () => {
    assert.equal(freeSlots({ ...load, prefetch: 30 }), 40);
    assert.equal(freeSlots({ ...load, prefetch: 500 }), 110);
    assert.equal(freeSlots({ ...load, prefetch: 30, queuedBytes: 1000 }), 10);
  });
  test('none while the results waiting to be written reach their bound', () => {
    assert.equal(freeSlots({ ...load, prefetch: 30, unrecorded: 399, maxUnrecorded: 400 }), 40);
    assert.equal(freeSlots({ ...load, prefetch: 30, unrecorded: 400, maxUnrecorded: 400 }), 0);
  });
  test('none while the bytes of the results waiting to be written reach their bound, however few they are', () => {
    const lagging = { ...load, prefetch: 30, unrecorded: 3, maxUnrecorded: 400, maxUnrecordedBytes: 1 << 20 };
    assert.equal(freeSlots({ ...lagging, unrecordedBytes: (1 << 20) - 1 }), 40);
    assert.equal(freeSlots({ ...lagging, unrecordedBytes: 1 << 20 }), 0);
    assert.equal(resultsLag({ ...lagging, unrecordedBytes: 1 << 20 }), true);
    assert.equal(resultsLag(lagging), false);
  });
});

describe('givesSlotsBack (a function idle in this process)', () => {
  const idle = { held: 2, got: 0, local: 0, busyAt: 1000, now: 2000, idleMs: 1000 };
  test('idle for idleMs: its slots go back', () => {
    assert.equal(givesSlotsBack(idle), true);
    assert.equal(givesSlotsBack({ ...idle, busyAt: undefined }), true, 'never busy here');
  });
  test('kept while it got work, has work here, holds none, or was busy within idleMs', () => {
    assert.equal(givesSlotsBack({ ...idle, got: 1 }), false);
    assert.equal(givesSlotsBack({ ...idle, local: 1 }), false);
    assert.equal(givesSlotsBack({ ...idle, held: 0 }), false);
    assert.equal(givesSlotsBack({ ...idle, now: 1999 }), false);
  });
});

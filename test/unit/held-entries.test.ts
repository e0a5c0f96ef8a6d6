import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EntryMessage, HeldEntries } from '../../src/store/log-leases.js';

// What a process tells a lease it holds (migration 047): every entry of a topic in the window it names must be among
// the messages the lease is read with, or a cursor's entry would come back with its id alone and be lost.

/** Entries for seqs (from, to], event id = seq. */
function entries(from: number, to: number): Map<string, EntryMessage> {
  const got = new Map<string, EntryMessage>();
  for (let seq = from + 1; seq <= to; seq++)
    got.set(String(seq), {
      message: { id: `m${seq}`, body: `{"seq":${seq}}`, attributes: {} } as unknown as EntryMessage['message'],
      subject: null,
      trace: null,
      seq: BigInt(seq),
    });
  return got;
}

/** Every seq of each window told is among the messages told with it. */
function assertWhole(held: HeldEntries): void {
  const told = held.windows();
  told.topics.forEach((topic, i) => {
    const map = told.messages.get(topic)!;
    for (let seq = Number(told.lo[i]) + 1; seq <= Number(told.hi[i]); seq++)
      assert.ok(map.has(String(seq)), `${topic}: seq ${seq} is in the window (${told.lo[i]}, ${told.hi[i]}]`);
  });
}

test('ranges that meet or overlap join a stretch; one apart is a stretch of its own, until the gap fills', () => {
  const held = new HeldEntries();
  held.hold('t', 0n, 10n, entries(0, 10));
  held.hold('t', 5n, 20n, entries(5, 20));
  held.hold('t', 20n, 25n, entries(20, 25));
  let told = held.windows();
  assert.deepEqual([told.topics, told.lo, told.hi], [['t'], ['0'], ['25']]);
  assertWhole(held);

  const inFlight = held.windows();
  held.hold('t', 40n, 50n, entries(40, 50));
  told = held.windows();
  assert.deepEqual(
    [told.topics, told.lo, told.hi],
    [
      ['t', 't'],
      ['0', '40'],
      ['25', '50'],
    ],
  );
  assertWhole(held);
  held.hold('t', 25n, 40n, entries(25, 40));
  told = held.windows();
  assert.deepEqual([told.lo, told.hi], [['0'], ['50']]);
  assert.equal(held.get('t', '45')?.message.id, 'm45');
  assert.equal(inFlight.messages.get('t')!.get('3')?.message.id, 'm3', 'the lease sent before still resolves its own');
  assertWhole(held);
});

test('over its limit a topic drops its lowest seqs, and its stretches start past them; the maps told stay whole', () => {
  const held = new HeldEntries({ perTopic: 100, inAll: 1000, stretches: 3 });
  held.hold('t', 0n, 60n, entries(0, 60));
  held.hold('t', 70n, 110n, entries(70, 110));
  const before = held.windows();
  held.hold('t', 115n, 130n, entries(115, 130));
  const told = held.windows();
  // 115 held, 75 kept: seqs 1 to 40 go.
  assert.deepEqual(
    [told.lo, told.hi],
    [
      ['40', '70', '115'],
      ['60', '110', '130'],
    ],
  );
  assert.equal(told.messages.get('t')!.size, 75);
  assert.equal(before.messages.get('t')!.size, 115, 'the earlier map keeps what it had, and what joined it');
  assertWhole(held);
  held.hold('t', 200n, 201n, entries(200, 201));
  held.hold('t', 300n, 301n, entries(300, 301));
  assert.deepEqual(held.windows().lo, ['115', '200', '300'], 'at most three stretches: the lowest goes');
  assertWhole(held);
});

test('over the limit in all, the topics leased least lately go, never the one just leased', () => {
  const held = new HeldEntries({ perTopic: 100, inAll: 120, stretches: 16 });
  held.hold('a', 0n, 50n, entries(0, 50));
  held.hold('b', 0n, 50n, entries(0, 50));
  held.hold('a', 50n, 60n, entries(50, 60));
  held.hold('c', 0n, 50n, entries(0, 50));
  assert.deepEqual(held.windows().topics, ['a', 'c'], 'b was leased least lately');
  assert.deepEqual(held.windows(new Set(['c', 'x'])).topics, ['c'], 'a lease is told of the topics it leases');
  held.hold('c', 50n, 99n, entries(50, 99));
  assert.deepEqual(held.windows().topics, ['c']);
  assertWhole(held);
});

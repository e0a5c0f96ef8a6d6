import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { type Claimed, ClaimLoop } from '../../src/queue/claim-loop.js';

// The claim loop shared by the delivery and function workers, driven with work held in memory: what wakes it.

/** One group of one slot; `waiting` is what the next claim finds. */
class MemoryLoop extends ClaimLoop<Claimed> {
  waiting: Claimed[] = [];
  readonly done: string[] = [];
  claims = 0;
  constructor(private readonly workMs: number) {
    super({ concurrency: 1, pollInterval: 60_000, maxClaim: 10 }, createLogger('error'));
  }
  protected limits() {
    return new Map([['g', 1]]);
  }
  protected async claim(wanted: Map<string, number>) {
    this.claims++;
    return this.waiting.splice(0, wanted.get('g') ?? 0);
  }
  protected async process(item: Claimed) {
    await new Promise((r) => setTimeout(r, this.workMs));
    this.done.push(item.key);
  }
  protected async release() {}
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (the poll is a minute away)`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('work announced while every slot is busy is claimed when a slot frees, not at the next poll', async () => {
  const loop = new MemoryLoop(200);
  loop.startLoop();
  try {
    await until(() => loop.claims === 1, 'the first, empty claim');
    // Work leased to the loop by another statement (routing's direct lease) fills its one slot; it was not claimed,
    // so the loop has no reason of its own to claim again when the slot frees.
    loop.adopt([{ key: 'a', group: 'g' }], Date.now());
    loop.waiting.push({ key: 'b', group: 'g' });
    loop.wake(); // a NOTIFY, arriving while the slot is busy
    await until(() => loop.done.includes('b'), 'the announced work');
    assert.deepEqual(loop.done, ['a', 'b']);
  } finally {
    await loop.stop(1000);
  }
});

/** Groups as set by the test; counts how often the loop reads them and what it hands back. */
class CountingLoop extends ClaimLoop<Claimed> {
  groups = new Map([['g', 1]]);
  reads = 0;
  readonly done: string[] = [];
  readonly released: string[] = [];
  constructor() {
    super({ concurrency: 2, pollInterval: 60_000, maxClaim: 10 }, createLogger('error'));
  }
  protected limits() {
    this.reads++;
    return new Map(this.groups);
  }
  setGroups(groups: [string, number][]): void {
    this.groups = new Map(groups);
    this.limitsChanged();
  }
  protected async claim() {
    return [];
  }
  protected async process(item: Claimed) {
    await new Promise((r) => setImmediate(r));
    this.done.push(item.key);
  }
  protected async release(items: Claimed[]) {
    this.released.push(...items.map((i) => i.key));
  }
}

test('the loop reads its groups once, not per finished item, until they change', async () => {
  const loop = new CountingLoop();
  loop.startLoop();
  try {
    const items = Array.from({ length: 50 }, (_, i) => ({ key: `a${i}`, group: 'g' }));
    loop.adopt(items, Date.now());
    await until(() => loop.done.length === 50, 'the adopted items');
    assert.equal(loop.reads, 1);
    // Paused: what is leased to it now is handed back, not run.
    loop.setGroups([['h', 1]]);
    loop.adopt([{ key: 'b', group: 'g' }], Date.now());
    await until(() => loop.released.includes('b'), 'the paused group handed back');
    assert.equal(loop.done.includes('b'), false);
    assert.equal(loop.reads, 2);
  } finally {
    await loop.stop(1000);
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CROWDED_PASSES,
  nextWakeStep,
  REST_PASSES,
  type RoutingPass,
  type WakeState,
} from '../../src/model/wake-policy.js';

// The router's wake-up decisions (docs/architecture.md, Wake-ups), driven directly: what a trickle, a burst and
// another process's routing make the router do with its sleeping flag. (How many NOTIFYs and flips this costs on a
// real machine at given rates is measured by bench/probes/wake-ups.ts, not asserted here.)

const asleep = (): WakeState => ({ flag: true, quiet: true, kicked: true, crowded: 0, rested: 0 });
const pass = (p: Partial<RoutingPass> = {}): RoutingPass => ({
  events: 1,
  batchSize: 500,
  busy: false,
  notifyWaiting: false,
  ...p,
});

const empty = (n: number) => Array.from({ length: n }, () => pass({ events: 0 }));

/** Plays passes through the router's state as EventRouter.run does; returns the flag's flips and the steps. */
function play(passes: RoutingPass[], state = asleep()): { flips: number; steps: string[] } {
  let flips = 0;
  const steps: string[] = [];
  const write = (flag: boolean) => {
    if (state.flag !== flag) flips++;
    state.flag = flag;
  };
  for (const p of passes) {
    const { step, crowded, rested } = nextWakeStep(state, p);
    state.crowded = crowded;
    state.rested = rested;
    steps.push(step);
    if (step === 'sleep') state.kicked = true; // woken by the next NOTIFY
    if (step === 'route' || step === 'yield') {
      if (state.flag) state.quiet = false;
      write(false);
    }
    if (step === 'idle') {
      if (!state.flag) {
        write(true);
        state.quiet = false;
      }
      state.quiet = true; // no writer in flight
      state.kicked = true;
    }
  }
  return { flips, steps };
}

test('a trickle (each pass woken by a NOTIFY, no other waiting) keeps the flag set: no flips for any number of events', () => {
  const { flips, steps } = play(Array.from({ length: 20 }, () => pass()));
  assert.equal(flips, 0);
  assert.deepEqual(new Set(steps), new Set(['sleep']));
});

test(`a NOTIFY already waiting after ${CROWDED_PASSES} passes in a row is load: the flag is cleared and routing goes on`, () => {
  const crowded = Array.from({ length: CROWDED_PASSES }, () => pass({ notifyWaiting: true }));
  const { steps, flips } = play(crowded);
  assert.deepEqual(steps, [...Array(CROWDED_PASSES - 1).fill('sleep'), 'route']);
  assert.equal(flips, 1);
});

test('a NOTIFY waiting now and then (not in a row) is still a trickle', () => {
  const passes = Array.from({ length: 30 }, (_, i) => pass({ notifyWaiting: i % CROWDED_PASSES !== 0 }));
  assert.equal(play(passes).flips, 0);
});

test('a full batch is load: the flag is cleared, routing goes on without sleeping, and is set once when idle again', () => {
  const burst = [pass({ events: 500 }), pass({ events: 500 }), pass({ events: 500 }), pass({ events: 7 })];
  const { steps, flips } = play([...burst, ...empty(REST_PASSES + 1)]);
  assert.deepEqual(steps, ['route', 'route', 'route', 'route', ...Array(REST_PASSES).fill('rest'), 'idle']);
  assert.equal(flips, 2, 'cleared once for the whole burst, set once after it');
});

test('after load, a gap between commits shorter than the rest is still load: the flag stays clear, no writer notifies', () => {
  const gappy = Array.from({ length: 10 }, () => [pass({ events: 500 }), ...empty(REST_PASSES)]).flat();
  const { steps, flips } = play(gappy);
  assert.equal(flips, 1, 'cleared once, never set again');
  assert.ok(!steps.includes('idle') && !steps.includes('sleep'), steps.join(' '));
});

test('a sleeping router (flag set) that finds nothing goes idle at once: a trickle does not rest', () => {
  assert.deepEqual(nextWakeStep(asleep(), pass({ events: 0 })), { step: 'idle', crowded: 0, rested: 0 });
  const { steps } = play([pass(), ...empty(1), pass()]);
  assert.deepEqual(steps, ['sleep', 'idle', 'sleep']);
});

test('events found by the poll (not by a NOTIFY) mean a writer missed the flag: it is written again', () => {
  const state = { ...asleep(), kicked: false };
  assert.equal(nextWakeStep(state, pass()).step, 'route');
  const { steps } = play([pass(), ...empty(REST_PASSES + 1)], state);
  assert.deepEqual(steps, ['route', ...Array(REST_PASSES).fill('rest'), 'idle']);
  assert.equal(state.flag, true);
});

test('another process routing: this one yields (flag cleared) whatever it routed', () => {
  assert.equal(nextWakeStep(asleep(), pass({ busy: true, events: 0 })).step, 'yield');
  assert.equal(nextWakeStep(asleep(), pass({ busy: true, events: 3 })).step, 'yield');
});

test('until writers in flight are known to have seen the flag (not quiet), events are routed on without sleeping', () => {
  assert.equal(nextWakeStep({ ...asleep(), quiet: false }, pass()).step, 'route');
  assert.equal(nextWakeStep({ ...asleep(), flag: false }, pass()).step, 'route');
});

import { availableParallelism, loadavg } from 'node:os';

/**
 * How many times longer than on an idle machine a wait may take now: the 1-minute load per core, from 1 to 8.
 * A test's deadline only guards against a hang; it must not fail because the machine is busy (a full `npm test`
 * beside a CPU-heavy process ran 2 cores at load 27, and 200 webhooks took longer than the 15 s a wait allowed).
 * Read at each check, so a wait that began on an idle machine stretches when the load comes.
 */
export function patience(): number {
  return Math.min(8, Math.max(1, loadavg()[0]! / availableParallelism()));
}

/** A guard's milliseconds on this machine now (see patience). */
export const patient = (ms: number): number => Math.round(ms * patience());

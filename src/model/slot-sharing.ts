/*
 * How a claim loop shares its free slots among groups (subscriptions, functions), and when a function's idle
 * slots go back: the whole computation, with no I/O and no state. ClaimLoop (and the function worker) keep the
 * counts and ask.
 */

/** A group that may be claimed for, as the loop sees it now. */
export interface SlotGroup {
  group: string;
  /** How many more items it can take: its free slots plus what it may claim ahead, less what it holds (≥ 0 or not). */
  room: number;
  /** Its last claim filled every slot asked for: it probably has more waiting. */
  backlogged: boolean;
}

/** What the loop holds now, over all groups. */
export interface LoopLoad {
  concurrency: number;
  inFlight: number;
  queued: number;
  queuedBytes: number;
  /** Sum over the groups of what each may claim ahead of its free slots. */
  prefetch: number;
  /** Bounds of the local queue of items claimed ahead. */
  maxQueued: number;
  maxQueuedBytes: number;
  /** Finished items whose results are not written yet, and how many of those (or how many bytes) stop new claims. */
  unrecorded?: number;
  maxUnrecorded?: number;
  unrecordedBytes?: number;
  maxUnrecordedBytes?: number;
}

/**
 * Results are written more slowly than items finish: as many results as the bound, or as many bytes (a function's
 * results carry the messages it published, up to 256 KB each), wait to be written.
 */
export function resultsLag(load: LoopLoad): boolean {
  return (
    (load.unrecorded ?? 0) >= (load.maxUnrecorded ?? Infinity) ||
    (load.unrecordedBytes ?? 0) >= (load.maxUnrecordedBytes ?? Infinity)
  );
}

/**
 * Free slots, plus room to wait for groups that claim ahead (none while the queue holds many large items). None
 * while results are written more slowly than items finish: claiming on would pile the results up in memory, and
 * their leases would run out before they are written.
 */
export function freeSlots(load: LoopLoad): number {
  if (resultsLag(load)) return 0;
  const ahead = load.queuedBytes >= load.maxQueuedBytes ? 0 : Math.min(load.maxQueued, load.prefetch);
  return load.concurrency - load.inFlight - load.queued + ahead;
}

/**
 * How many items to ask each group for, out of `free`. Every group with room gets a fair share of the free capacity
 * first (free / groups, rounded down, at least 1) — in an order rotated by `rotation`, so that with more groups than
 * slots each gets its turn — and backlogged groups, in the same order, get the rest. (Handing the slots out in a
 * fixed order would starve every group past the first few.) Never more than `free` in all, nor more than a group's
 * room; groups that get nothing are absent.
 */
export function shareSlots(groups: readonly SlotGroup[], free: number, rotation: number): Map<string, number> {
  const wanted = new Map<string, number>();
  if (free <= 0 || !groups.length) return wanted;
  const start = rotation % groups.length;
  const ordered = [...groups.slice(start), ...groups.slice(0, start)];
  const room = (g: SlotGroup) => g.room - (wanted.get(g.group) ?? 0);
  const share = Math.max(1, Math.floor(free / ordered.length));
  for (const g of ordered) {
    if (free <= 0) break;
    const n = Math.min(room(g), share, free);
    if (n > 0) {
      wanted.set(g.group, n);
      free -= n;
    }
  }
  for (const g of ordered) {
    if (free <= 0) break;
    if (!g.backlogged) continue;
    const n = Math.min(room(g), free);
    if (n > 0) {
      wanted.set(g.group, (wanted.get(g.group) ?? 0) + n);
      free -= n;
    }
  }
  return wanted;
}

/**
 * Whether a function's slots (held in this process) go back for other processes to take: only when it holds some,
 * its last claim got nothing, nothing of it is running or queued here, and it has been idle for idleMs (not at
 * once: a wake-up may come before routing has created the invocation, and giving the slots back on that empty claim
 * only to take them again would add two round trips to every invocation's path).
 */
export function givesSlotsBack(input: {
  held: number;
  got: number;
  local: number;
  busyAt: number | undefined;
  now: number;
  idleMs: number;
}): boolean {
  if (input.got || input.local || !input.held) return false;
  return input.now - (input.busyAt ?? 0) >= input.idleMs;
}

import type { BenchServer } from './postgres.js';
import type { Recorder } from './recorder.js';
import type { Results } from './report.js';

/** Sizes and durations of one run: the full suite (issue 6's figures) or --quick (a smoke run of the same code). */
export interface Profile {
  name: 'full' | 'quick';
  /** Repetitions of the capture-overhead measurements; each figure is their median with min–max. */
  reps: number;
  /** decodeMs: how long the rows of the logical 100-row measurement are waited for to become events. */
  capture: { durationMs: number; warmupMs: number; rowsPerStatement: number; decodeMs: number };
  /** rate events/s for durationMs, reported per window (the repetitions of a latency figure). */
  latency: { rate: number; durationMs: number; windows: number };
  /**
   * The drains' own repetitions (each fills and empties a 100k backlog, so they cost the most), and the longest a
   * drain is watched: a build far below the targets still finishes within the run's budget.
   */
  drain: {
    reps: number;
    events: number;
    fanoutEvents: number;
    subscriptions: number;
    functionEvents: number;
    graphileJobs: number;
    maxMs: number;
  };
  /** Rates tried in order, each for stepMs, until one fails; the best is then held for holdMs. */
  sustained: { rates: number[]; stepMs: number; holdMs: number; p99Ms: number };
  /** Backlog size and how long the drain is watched (peak RSS comes early; the rest would only take time). */
  memory: { events: number; drainMs: number };
  /**
   * How cost grows with the work (issue 20): drains of each backlog (rowcast and the peer), those of `large` events
   * or more run `largeReps` times and are watched for `largeWatchMs` (the rest: the drain's reps and cap); fan-out
   * of `deliveries` spread over each count of subscriptions; `events` drained by each count of rowcast processes.
   */
  scale: {
    backlogs: number[];
    large: number;
    largeReps: number;
    largeWatchMs: number;
    fanout: { deliveries: number; subscriptions: number[] };
    processes: { events: number; counts: number[] };
  };
  /** Rows in each backfilled table (store, PostgreSQL source, MySQL source) and rows per batch. */
  backfill: { rows: number; batch: number };
}

export const FULL: Profile = {
  name: 'full',
  reps: 3,
  capture: { durationMs: 4000, warmupMs: 1000, rowsPerStatement: 100, decodeMs: 60_000 },
  latency: { rate: 200, durationMs: 30_000, windows: 3 },
  drain: {
    reps: 2,
    events: 100_000,
    fanoutEvents: 10_000,
    subscriptions: 10,
    functionEvents: 50_000,
    graphileJobs: 100_000,
    maxMs: 30_000,
  },
  sustained: { rates: [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000], stepMs: 8000, holdMs: 60_000, p99Ms: 50 },
  memory: { events: 1_000_000, drainMs: 60_000 },
  scale: {
    backlogs: [10_000, 100_000, 1_000_000],
    large: 1_000_000,
    largeReps: 1,
    largeWatchMs: 60_000,
    fanout: { deliveries: 100_000, subscriptions: [1, 10, 100] },
    processes: { events: 100_000, counts: [1, 2, 4] },
  },
  backfill: { rows: 100_000, batch: 1000 },
};

export const QUICK: Profile = {
  name: 'quick',
  reps: 1,
  capture: { durationMs: 1500, warmupMs: 300, rowsPerStatement: 100, decodeMs: 10_000 },
  latency: { rate: 200, durationMs: 4000, windows: 2 },
  drain: {
    reps: 1,
    events: 5000,
    fanoutEvents: 500,
    subscriptions: 10,
    functionEvents: 2000,
    graphileJobs: 5000,
    maxMs: 20_000,
  },
  sustained: { rates: [250, 500], stepMs: 3000, holdMs: 4000, p99Ms: 50 },
  memory: { events: 50_000, drainMs: 8000 },
  scale: {
    backlogs: [1000, 5000, 20_000],
    large: 20_000,
    largeReps: 1,
    largeWatchMs: 8000,
    fanout: { deliveries: 5000, subscriptions: [1, 10, 100] },
    processes: { events: 5000, counts: [1, 2, 4] },
  },
  backfill: { rows: 5000, batch: 500 },
};

export interface BenchContext {
  server: BenchServer;
  profile: Profile;
  results: Results;
  /** The webhook receiver process every scenario delivers to. */
  receiver: Recorder;
  /** A progress line (prefixed with the elapsed time). */
  log(line: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<void>;
}

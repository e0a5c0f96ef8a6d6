/** The load generator: pg clients writing to the database, as fast as they can or at a fixed rate. */
import pg from 'pg';
import { monotonicMs, sleep } from './clock.js';

async function connect(url: string, n: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'rowcast bench writer' });
      await c.connect();
      return c;
    }),
  );
}

/** Hands out row ids, unique within a scenario's database. */
export class IdSequence {
  constructor(private next = 1) {}
  take(n = 1): number {
    const first = this.next;
    this.next += n;
    return first;
  }
}

/**
 * `writers` connections each run statement after statement (autocommit: one transaction each) for durationMs;
 * commits in the first warmupMs are not counted. Resolves with commits per second.
 */
export async function commitsPerSecond(
  url: string,
  options: { writers: number; durationMs: number; warmupMs: number; sql: string; params: () => unknown[] },
): Promise<number> {
  const clients = await connect(url, options.writers);
  try {
    const start = monotonicMs();
    const countFrom = start + options.warmupMs;
    const end = countFrom + options.durationMs;
    let counted = 0;
    await Promise.all(
      clients.map(async (c) => {
        for (;;) {
          await c.query(options.sql, options.params());
          const t = monotonicMs();
          if (t >= end) return;
          if (t >= countFrom) counted++;
        }
      }),
    );
    return counted / (options.durationMs / 1000);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

export interface OpenLoopResult {
  /** Row id → when its COMMIT returned to the writer (ms, monotonic clock). */
  commits: Map<number, number>;
  /** Events committed per second over the run. */
  achievedRate: number;
  /** Statements that started more than 100 ms behind schedule (the writers could not keep the rate). */
  late: number;
}

/**
 * Writes `rate` rows per second for durationMs on a fixed schedule, whatever the database's pace (an open loop:
 * a slow commit does not slow the schedule down, up to `connections` statements in flight). Rows go in
 * statements of `rowsPerStatement` (one transaction each); each row's commit time is recorded.
 */
export async function writeAtRate(
  url: string,
  options: {
    rate: number;
    durationMs: number;
    connections: number;
    rowsPerStatement: number;
    ids: IdSequence;
    sql: (rows: number) => string;
  },
): Promise<OpenLoopResult> {
  const clients = await connect(url, options.connections);
  const free = [...clients];
  const waiters: Array<(c: pg.Client) => void> = [];
  const acquire = () => (free.length ? Promise.resolve(free.pop()!) : new Promise<pg.Client>((r) => waiters.push(r)));
  const release = (c: pg.Client) => (waiters.length ? waiters.shift()!(c) : free.push(c));
  const commits = new Map<number, number>();
  const inFlight = new Set<Promise<void>>();
  let late = 0;
  let failure: Error | undefined;
  try {
    const perStatementMs = (1000 * options.rowsPerStatement) / options.rate;
    const statements = Math.floor(options.durationMs / perStatementMs);
    const start = monotonicMs() + 20;
    for (let k = 0; k < statements && !failure; k++) {
      const due = start + k * perStatementMs;
      const wait = due - monotonicMs();
      if (wait > 1) await sleep(wait - 0.5);
      const client = await acquire();
      if (monotonicMs() - due > 100) late++;
      const first = options.ids.take(options.rowsPerStatement);
      const p = client
        .query(options.sql(options.rowsPerStatement), [first])
        .then(
          () => {
            const t = monotonicMs();
            for (let i = 0; i < options.rowsPerStatement; i++) commits.set(first + i, t);
          },
          (err: Error) => void (failure ??= err),
        )
        .finally(() => {
          release(client);
          inFlight.delete(p);
        });
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    const seconds = (monotonicMs() - start) / 1000;
    return { commits, achievedRate: commits.size / seconds, late };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/** INSERT of `rows` reference rows with ids $1, $1+1, … (the open loop's statement). */
export function insertBatchSql(table: string): (rows: number) => string {
  const t = pg.escapeIdentifier(table);
  return (rows) =>
    `INSERT INTO ${t} SELECT g, 'customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', now() FROM generate_series($1::bigint, $1::bigint + ${rows - 1}) AS g`;
}

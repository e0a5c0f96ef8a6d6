/**
 * The graphile-worker baseline: a trigger on the reference table queues one job per row with
 * graphile_worker.add_job (as a user would wire it), and a worker process runs a no-op task.
 */
import { runMigrations } from 'graphile-worker';
import pg from 'pg';
import type { Pool } from '../../src/store/pool.js';
import { Recorder } from '../support/recorder.js';

export interface GraphileSettings {
  label: string;
  concurrency?: number;
  maxPoolSize?: number;
  /** preset.worker options (localQueue, completeJobBatchDelay, failJobBatchDelay). */
  preset?: Record<string, unknown>;
  /**
   * The peer a user would build instead of rowcast: the task signs the job's payload (Standard Webhooks, as rowcast
   * signs) and POSTs it with undici over keep-alive connections, failing the job on a non-2xx answer. Without it,
   * the task is a no-op.
   */
  post?: { url: string; secret: string };
}

/**
 * Out of the box, except the concurrency: graphile-worker's own default is 1 job at a time, which would
 * make the comparison one of concurrency; both settings run 24 jobs at once (its performance page's figure).
 */
export const GRAPHILE_DEFAULT: GraphileSettings = {
  label: 'graphile-worker default',
  concurrency: 24,
  maxPoolSize: 25,
};
/** The batching its performance page (worker.graphile.org/docs/performance) recommends for throughput. */
export const GRAPHILE_BATCHED: GraphileSettings = {
  label: 'graphile-worker batched',
  concurrency: 24,
  maxPoolSize: 25,
  preset: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
};

/** Installs (or updates) graphile-worker's schema, graphile_worker. */
export async function installGraphileSchema(url: string): Promise<void> {
  await runMigrations({ connectionString: url });
}

/** Installs graphile-worker's schema and a trigger queueing `bench_noop` {id} for each row inserted into table. */
export async function installGraphileTrigger(pool: Pool, url: string, table: string): Promise<void> {
  await installGraphileSchema(url);
  const t = pg.escapeIdentifier(table);
  const fn = pg.escapeIdentifier(`${table}_add_job`);
  await pool.query(`
    CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM graphile_worker.add_job('bench_noop', json_build_object('id', NEW.id));
      RETURN NULL;
    END $$;
    CREATE TRIGGER ${pg.escapeIdentifier(`${table}_graphile`)} AFTER INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
}

/**
 * Queues jobs first..last (payload {id}) with graphile-worker's batch function add_jobs, in chunks: a backlog for
 * the drain. (Its per-row add_job, as the trigger calls it, takes minutes for 100,000 rows on 2 cores; only the
 * drain is measured, so the backlog goes in the fastest documented way.)
 */
export async function queueGraphileJobs(
  pool: Pool,
  first: number,
  last: number,
  onProgress?: (done: number) => void,
): Promise<void> {
  const chunk = 50_000;
  for (let from = first; from <= last; from += chunk) {
    const to = Math.min(last, from + chunk - 1);
    await pool.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
         SELECT ROW('bench_noop', json_build_object('id', g), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
           FROM generate_series($1::bigint, $2::bigint) AS g))`,
      [from, to],
    );
    onProgress?.(to - first + 1);
  }
}

/** A graphile-worker process running the no-op task with these settings. */
export function startGraphileWorker(url: string, settings: GraphileSettings): Promise<Recorder> {
  return Recorder.start(new URL('./graphile-worker-main.ts', import.meta.url), {
    BENCH_GRAPHILE: JSON.stringify({ ...settings, connectionString: url }),
  });
}

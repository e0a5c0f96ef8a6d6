/**
 * The latency floor: a trigger that sends pg_notify with the row id on every insert, and a LISTEN connection
 * that records when each notification arrived. No queue, no durability: the least any trigger-based notifier
 * can cost.
 */
import pg from 'pg';
import type { Pool } from '../../src/store/pool.js';
import { monotonicMs } from '../support/clock.js';

const CHANNEL = 'bench_latency';

export async function installNotifyTrigger(pool: Pool, table: string): Promise<void> {
  const fn = pg.escapeIdentifier(`${table}_notify`);
  await pool.query(`
    CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify(${pg.escapeLiteral(CHANNEL)}, NEW.id::text);
      RETURN NULL;
    END $$;
    CREATE TRIGGER ${pg.escapeIdentifier(`${table}_notify`)} AFTER INSERT ON ${pg.escapeIdentifier(table)} FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
}

/** A LISTEN connection; arrivals maps row id → arrival time (ms, monotonic clock). */
export async function listen(url: string): Promise<{ arrivals: Map<number, number>; stop(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url, application_name: 'rowcast bench listener' });
  await client.connect();
  const arrivals = new Map<number, number>();
  client.on('notification', (n) => {
    const at = monotonicMs();
    const id = Number(n.payload);
    if (!arrivals.has(id)) arrivals.set(id, at);
  });
  await client.query(`LISTEN ${pg.escapeIdentifier(CHANNEL)}`);
  return { arrivals, stop: () => client.end() };
}

import type { Pool } from '../../src/store/pool.js';

/** Names of the user (non-internal) triggers on schema.table, sorted; [] when the table does not exist. */
export async function triggersOn(pool: Pool, schema: string, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ tgname: string }>(
    `SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND NOT t.tgisinternal ORDER BY t.tgname`,
    [schema, table],
  );
  return rows.map((r) => r.tgname);
}

/** Every user trigger in the database whose name starts with rowcast_, as "schema.table:trigger". */
export async function allRowcastTriggers(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ t: string }>(
    `SELECT n.nspname || '.' || c.relname || ':' || t.tgname AS t FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND t.tgname LIKE 'rowcast\\_%' ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}

/** Names of the capture trigger functions (rowcast.capture_*), sorted. */
export async function captureFunctions(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ proname: string }>(
    `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'rowcast' AND p.proname LIKE 'capture\\_%' ORDER BY p.proname`,
  );
  return rows.map((r) => r.proname);
}

export async function tableExists(pool: Pool, schema: string, table: string): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  return rows.length === 1;
}

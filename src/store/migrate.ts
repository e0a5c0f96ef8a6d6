import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import { type Pool, withoutDeadline } from './pool.js';
import { MIGRATION_LOCK } from './advisory-locks.js';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Serialises migrators across processes: the second one waits, then finds nothing left to do. */

export interface Migration {
  id: number;
  name: string;
  sql: string;
  checksum: string;
}

export function listMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d{3}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(MIGRATIONS_DIR, file), 'utf8');
      return {
        id: Number(file.slice(0, 3)),
        name: file.replace(/\.sql$/, ''),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

/** Brings schema rowcast up to date. Safe to run from several processes at once. */
export async function migrate(pool: Pool, onProgress?: (message: string) => void): Promise<MigrateResult> {
  const client = await pool.connect();
  try {
    // Exempt from database.statementTimeout: another process may hold the lock while it migrates, and a
    // migration may rewrite a large table. The session's setting goes with it (the connection is closed below).
    await client.query('SET statement_timeout = 0');
    await client.query(withoutDeadline('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]));
    await client.query(`CREATE SCHEMA IF NOT EXISTS rowcast;
      CREATE TABLE IF NOT EXISTS rowcast.schema_migrations (
        id integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number; name: string; checksum: string }>(
      'SELECT id, name, checksum FROM rowcast.schema_migrations ORDER BY id',
    );
    const done = new Map(rows.map((r) => [r.id, r]));
    const migrations = listMigrations();
    const newest = migrations.at(-1)?.id ?? 0;
    const ahead = rows.filter((r) => r.id > newest);
    if (ahead.length) {
      throw new RowcastError(
        ErrorCodes.MIGRATION_FAILED,
        `The database has rowcast migrations this version does not know (${ahead.map((r) => r.name).join(', ')}): upgrade rowcast.`,
      );
    }
    const applied: string[] = [];
    for (const m of migrations) {
      const prior = done.get(m.id);
      if (prior) {
        if (prior.checksum !== m.checksum) {
          throw new RowcastError(
            ErrorCodes.MIGRATION_FAILED,
            `Migration ${m.name} changed after it was applied: migrations are append-only; restore the file and add a new migration instead.`,
          );
        }
        continue;
      }
      onProgress?.(`applying ${m.name}`);
      try {
        await client.query('BEGIN');
        await client.query(withoutDeadline(m.sql));
        await client.query('INSERT INTO rowcast.schema_migrations (id, name, checksum) VALUES ($1, $2, $3)', [
          m.id,
          m.name,
          m.checksum,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw new RowcastError(
          ErrorCodes.MIGRATION_FAILED,
          `Migration ${m.name} failed and was rolled back: ${(err as Error).message}`,
          [],
          { cause: err },
        );
      }
      applied.push(m.name);
    }
    return { applied, current: newest };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    // Not back to the pool: its statement_timeout is off.
    client.release(true);
  }
}

/** Names of migrations not yet applied (all of them if rowcast was never migrated). */
export async function pendingMigrations(pool: Pool): Promise<string[]> {
  const exists = await pool.query(`SELECT to_regclass('rowcast.schema_migrations') IS NOT NULL AS ok`);
  const applied = new Set<number>();
  if (exists.rows[0].ok) {
    for (const r of (await pool.query<{ id: number }>('SELECT id FROM rowcast.schema_migrations')).rows)
      applied.add(r.id);
  }
  return listMigrations()
    .filter((m) => !applied.has(m.id))
    .map((m) => m.name);
}

export async function assertMigrated(pool: Pool): Promise<void> {
  const pending = await pendingMigrations(pool);
  if (pending.length) {
    throw new RowcastError(
      ErrorCodes.MIGRATIONS_PENDING,
      `Schema rowcast is not up to date (pending: ${pending.join(', ')}): run \`rowcast migrate\`.`,
    );
  }
}

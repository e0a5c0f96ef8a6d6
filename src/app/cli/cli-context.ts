import type { Command } from 'commander';
import type { RowcastConfig } from '../../config/schema.js';
import type { Pool } from '../../store/pool.js';

/** The options every command takes (before the command's name). */
export interface GlobalOptions {
  config?: string;
  databaseUrl?: string;
  progress?: boolean;
}

/** What a command module gets from main.ts: the global options, the config, a pool. */
export interface CliContext {
  options(): GlobalOptions;
  /** The config and its file, or nothing when the command can do without one and none exists. */
  configFile(required: boolean): Promise<{ config?: RowcastConfig; file?: string }>;
  /** The config, or undefined when the command can do without one and none exists. */
  config(required: boolean): Promise<RowcastConfig | undefined>;
  withPool<T>(cfg: RowcastConfig | undefined, fn: (pool: Pool) => Promise<T>): Promise<T>;
}

/**
 * The context over a program's global options. The config loader (YAML, zod) and pg are imported when a command
 * first asks for them, not when the CLI starts: `rowcast --help` needs neither.
 */
export function cliContext(program: Command): CliContext {
  const options = () => program.opts<GlobalOptions>();
  const configFile = async (required: boolean): Promise<{ config?: RowcastConfig; file?: string }> => {
    const { findConfigFile, loadConfig } = await import('../../admin/config/load-config.js');
    const opts = options();
    let file: string;
    try {
      file = findConfigFile(opts.config);
    } catch (err) {
      if (required || opts.config) throw err;
      return {};
    }
    return { config: await loadConfig({ file }), file };
  };
  return {
    options,
    configFile,
    config: async (required) => (await configFile(required)).config,
    async withPool(cfg, fn) {
      const { createPool, resolveDatabaseUrl } = await import('../../store/pool.js');
      const url = resolveDatabaseUrl(options().databaseUrl ?? process.env.DATABASE_URL ?? cfg?.database.url);
      // Connect timeout and keepalive as configured; no statement deadline: apply's DDL may wait for an application's
      // locks, and an operator can interrupt a command.
      const pool = createPool(url, {
        max: 4,
        applicationName: 'rowcast cli',
        database: { ...cfg?.database, statementTimeout: 0 },
      });
      try {
        return await fn(pool);
      } finally {
        await pool.end();
      }
    },
  };
}

import { apply } from '../../src/admin/config/apply.js';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { RowcastProcess } from '../../test/support/rowcast-process.js';

/** Set by `npm run bench -- --cpu-prof`: where the rowcast processes write their CPU profiles. */
let cpuProfileDir: string | undefined;

export function writeCpuProfilesTo(dir: string): void {
  cpuProfileDir = dir;
}

/** Validates and applies a config, as `rowcast apply` does. Receivers are on loopback, hence allowPrivateEndpoints. */
export async function applyBenchConfig(pool: Pool, config: RowcastConfigInput): Promise<void> {
  await apply(pool, parseConfig(withBenchRuntime(config), 'bench config'));
}

/**
 * `rowcast start` as users run it: the installed CLI (bin/rowcast.js → dist/, which `npm run bench` rebuilds
 * first), so the load generator's CPU is its own and the child's memory is that of production. With --cpu-prof each
 * process writes a V8 CPU profile when it exits (open it in Chrome DevTools).
 */
export function startBenchRowcast(databaseUrl: string, config: RowcastConfigInput): RowcastProcess {
  return RowcastProcess.startWith(withBenchRuntime(config), databaseUrl, {
    installed: true,
    nodeArgs: cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : [],
  });
}

function withBenchRuntime(config: RowcastConfigInput): RowcastConfigInput {
  return { ...config, runtime: { allowPrivateEndpoints: true, logLevel: 'warn', ...config.runtime } };
}

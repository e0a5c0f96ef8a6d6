import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { eventually } from './database.js';
import { patient } from './patience.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** `rowcast <args>` as a child process of the test, run from source through tsx. */
export class RowcastProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';

  private constructor(args: string[], env: Record<string, string>, options: { prefix?: string[]; cwd?: string } = {}) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    // The test runner's own settings are not the child's business.
    delete childEnv.NODE_TEST_CONTEXT;
    delete childEnv.NODE_OPTIONS;
    // tsx and the CLI by absolute path, so that the child may run in another directory; `prefix` wraps the command
    // (e.g. `ip netns exec <namespace>`).
    const [file, ...rest] = [
      ...(options.prefix ?? []),
      process.execPath,
      '--import',
      TSX,
      path.join(ROOT, 'src/app/cli/main.ts'),
      ...args,
    ];
    this.child = spawn(file!, rest, { cwd: options.cwd ?? ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.child.stderr!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /**
   * `rowcast start --config <file>` with DATABASE_URL set; `prefix` runs it through another command that then
   * execs it (same pid), e.g. `ip netns exec <namespace>`.
   */
  static start(
    configFile: string,
    databaseUrl: string,
    env: Record<string, string> = {},
    prefix: string[] = [],
  ): RowcastProcess {
    return new RowcastProcess(
      ['start', '--config', configFile],
      { DATABASE_URL: databaseUrl, ROWCAST_LOG_LEVEL: 'warn', ...env },
      { prefix },
    );
  }

  /** `rowcast <args>` in the directory `cwd`, with these variables set. */
  static run(args: string[], env: Record<string, string>, cwd: string): RowcastProcess {
    return new RowcastProcess(args, env, { cwd });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the process printed (for failure messages). */
  get output(): string {
    return this.out;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /**
   * Waits until this process's router has gone to sleep for the first time: it is then fully started (its signal
   * handlers are installed, since that happens before the router's second query returns).
   */
  async ready(pool: Pool, timeoutMs = 60_000): Promise<string> {
    const id = await eventually(
      async () => {
        if (!this.running) throw new Error(`rowcast exited early: ${this.output}`);
        const { rows } = await pool.query<{ id: string }>(
          `SELECT id FROM rowcast.dispatchers WHERE id LIKE '%:' || $1::text || ':%' AND sleeping`,
          [String(this.pid)],
        );
        return rows[0]?.id;
      },
      `rowcast (pid ${this.pid}) to start`,
      timeoutMs,
    );
    return id;
  }

  /** Resolves with how the process ended, or rejects if it is still running after timeoutMs. */
  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    timeoutMs = patient(timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(`rowcast (pid ${this.pid}) still running after ${timeoutMs} ms; output: ${this.output}`),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Writes a config as a JSON file in a fresh temporary directory; remove() deletes the directory. Tests deliver to
 * loopback receivers, so runtime.allowPrivateEndpoints is true unless the config sets it.
 */
export function writeConfigFile(config: RowcastConfigInput): { file: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'rowcast-test-'));
  const file = path.join(dir, 'rowcast.config.json');
  const withDefaults = { ...config, runtime: { allowPrivateEndpoints: true, ...config.runtime } };
  writeFileSync(file, JSON.stringify(withDefaults, null, 2));
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

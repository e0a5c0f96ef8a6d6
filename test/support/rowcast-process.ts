import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { eventually, settled } from './database.js';
import { patient } from './patience.js';
import { rssMb } from './process-memory.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = import.meta.resolve('tsx');

export interface StartOptions {
  /** Variables set for the process, beside DATABASE_URL and ROWCAST_LOG_LEVEL=warn. */
  env?: Record<string, string>;
  /** A command that runs rowcast by exec (same pid), e.g. `ip netns exec <namespace>`. */
  prefix?: string[];
  /**
   * Run the installed CLI (bin/rowcast.js → dist/, built by `npm run build`) rather than the source through tsx:
   * the benchmark's choice, so that the process's CPU and memory are production's (tsx and esbuild add ~100 MB).
   */
  installed?: boolean;
  /** Options for node itself, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
}

/** `rowcast <args>` as a child process, for the tests and the benchmark alike. */
export class RowcastProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** [seconds since start, RSS in MB], one point per second: whether memory grows with the work or levels off. */
  readonly rssTimeline: Array<[number, number]> = [];
  private out = '';
  private peakRss = 0;

  private constructor(args: string[], env: Record<string, string>, options: StartOptions & { cwd?: string } = {}) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    // The test runner's own settings are not the child's business.
    delete childEnv.NODE_TEST_CONTEXT;
    delete childEnv.NODE_OPTIONS;
    // The CLI by absolute path, so that the child may run in another directory.
    const cli = options.installed
      ? [path.join(ROOT, 'bin/rowcast.js')]
      : ['--import', TSX, path.join(ROOT, 'src/app/cli/main.ts')];
    const [file, ...rest] = [...(options.prefix ?? []), process.execPath, ...(options.nodeArgs ?? []), ...cli, ...args];
    this.child = spawn(file!, rest, { cwd: options.cwd ?? ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.child.stderr!.on('data', (c: Buffer) => (this.out += c.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    // Memory, read from /proc: VmHWM is the kernel's own peak; sampling VmRSS as well survives a kernel without it.
    const sampler = setInterval(() => this.sampleRss(), 200).unref();
    void this.exited.then(() => clearInterval(sampler));
  }

  /** `rowcast start --config <file>` with DATABASE_URL set. */
  static start(configFile: string, databaseUrl: string, options: StartOptions = {}): RowcastProcess {
    return new RowcastProcess(
      ['start', '--config', configFile],
      { DATABASE_URL: databaseUrl, ROWCAST_LOG_LEVEL: 'warn', ...options.env },
      options,
    );
  }

  /** `rowcast start` with this config, written to a temporary file that is removed when the process exits. */
  static startWith(config: RowcastConfigInput, databaseUrl: string, options: StartOptions = {}): RowcastProcess {
    const configFile = writeConfigFile(config);
    const child = RowcastProcess.start(configFile.file, databaseUrl, options);
    void child.exited.then(() => configFile.remove());
    return child;
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

  /** Peak resident set size so far, in bytes. */
  get peakRssBytes(): number {
    this.sampleRss();
    return this.peakRss;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Waits until the process has registered its router: it works from then on, even while a backlog drains. */
  async started(pool: Pool, timeoutMs = 60_000): Promise<string> {
    return this.router(pool, '', 'register its router', timeoutMs);
  }

  /**
   * Waits until this process's router sleeps: it is then fully started (its signal handlers are installed, since
   * that happens before the router's second query returns) and has nothing left to route, so the next event tests
   * the wake-up.
   */
  async ready(pool: Pool, timeoutMs = 60_000): Promise<string> {
    return this.router(pool, 'AND sleeping', 'start', timeoutMs);
  }

  /** Nothing left to route, invoke or deliver, and the router asleep: a step that starts now inherits no backlog. */
  async drained(pool: Pool, timeoutMs = 120_000): Promise<void> {
    const began = Date.now();
    await settled(pool, timeoutMs);
    await this.ready(pool, Math.max(1000, timeoutMs - (Date.now() - began)));
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

  /** SIGTERM (a graceful drain), then SIGKILL if it is still running after 30 s. */
  async stop(): Promise<void> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), patient(30_000));
    await this.exited;
    clearTimeout(timer);
  }

  private async router(pool: Pool, condition: string, what: string, timeoutMs: number): Promise<string> {
    return eventually(
      async () => {
        if (!this.running) throw new Error(`rowcast exited early: ${this.output}`);
        const { rows } = await pool.query<{ id: string }>(
          `SELECT id FROM rowcast.dispatchers WHERE id LIKE '%:' || $1::text || ':%' ${condition}`,
          [String(this.pid)],
        );
        return rows[0]?.id;
      },
      `rowcast (pid ${this.pid}) to ${what}`,
      timeoutMs,
    );
  }

  private sampleRss(): void {
    const rss = rssMb(this.pid);
    if (rss === undefined) return;
    this.peakRss = Math.max(this.peakRss, rss * 2 ** 20, (rssMb(this.pid, 'VmHWM') ?? 0) * 2 ** 20);
    const second = Math.floor((Date.now() - this.startedAt) / 1000);
    if (this.rssTimeline.at(-1)?.[0] !== second) this.rssTimeline.push([second, Math.round(rss)]);
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

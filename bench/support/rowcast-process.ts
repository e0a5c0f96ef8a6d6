import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apply } from '../../src/admin/config/apply.js';
import { parseConfig } from '../../src/admin/config/load-config.js';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import type { Pool } from '../../src/store/pool.js';
import { sleep } from './clock.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Validates and applies a config, as `rowcast apply` does. Receivers are on loopback, hence allowPrivateEndpoints. */
export async function applyBenchConfig(pool: Pool, config: RowcastConfigInput): Promise<void> {
  await apply(pool, parseConfig(withBenchRuntime(config), 'bench config'));
}

function withBenchRuntime(config: RowcastConfigInput): RowcastConfigInput {
  return { ...config, runtime: { allowPrivateEndpoints: true, logLevel: 'warn', ...config.runtime } };
}

/** Kernel's view of a process's memory, in bytes: current and peak resident set (VmRSS, VmHWM). */
export function readRss(pid: number): { rss: number; peak: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return null; // not Linux, or the process is gone
  }
}

/**
 * `rowcast start` as a child process, run as users run it: the installed CLI (bin/rowcast.js → dist/, which
 * `npm run bench` rebuilds first), so the load generator's CPU is its own, and the child's memory, read from /proc,
 * is that of production (no TypeScript loader: running from source adds ~100 MB of tsx and esbuild).
 */
export class RowcastProcess {
  /** Set by `npm run bench -- --cpu-prof`: where the rowcast processes write their CPU profiles. */
  static cpuProfileDir: string | undefined;
  private out = '';
  private peakRss = 0;
  /** [seconds since start, RSS in MB], one point per second: whether memory grows with the work or levels off. */
  readonly rssTimeline: Array<[number, number]> = [];
  private readonly sampler: NodeJS.Timeout;
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    child.stdout!.on('data', (c: Buffer) => (this.out = (this.out + c.toString('utf8')).slice(-20_000)));
    child.stderr!.on('data', (c: Buffer) => (this.out = (this.out + c.toString('utf8')).slice(-20_000)));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    // VmHWM is the kernel's own peak; sampling VmRSS as well survives a kernel without it.
    const began = Date.now();
    this.sampler = setInterval(() => {
      const m = readRss(child.pid!);
      if (!m) return;
      this.peakRss = Math.max(this.peakRss, m.rss, m.peak);
      const second = Math.floor((Date.now() - began) / 1000);
      if (this.rssTimeline.at(-1)?.[0] !== second) this.rssTimeline.push([second, Math.round(m.rss / 2 ** 20)]);
    }, 200);
  }

  static start(databaseUrl: string, config: RowcastConfigInput): RowcastProcess {
    const dir = mkdtempSync(path.join(tmpdir(), 'rowcast-bench-'));
    const file = path.join(dir, 'rowcast.config.json');
    writeFileSync(file, JSON.stringify(withBenchRuntime(config), null, 2));
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl, ROWCAST_LOG_LEVEL: 'warn' };
    delete env.NODE_OPTIONS;
    // --cpu-prof: each rowcast process writes a V8 CPU profile when it exits (open it in Chrome DevTools).
    const profile = RowcastProcess.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', RowcastProcess.cpuProfileDir] : [];
    const child = spawn(process.execPath, [...profile, 'bin/rowcast.js', 'start', '--config', file], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new RowcastProcess(child, dir);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get output(): string {
    return this.out;
  }

  /** Waits until the process has registered its router (it works from then on, even with a backlog). */
  async started(pool: Pool, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`rowcast exited early (${this.child.exitCode}): ${this.out}`);
      const { rows } = await pool.query(`SELECT 1 FROM rowcast.dispatchers WHERE id LIKE '%:' || $1::text || ':%'`, [
        String(this.pid),
      ]);
      if (rows.length) return;
      if (Date.now() > deadline) throw new Error(`rowcast did not start within ${timeoutMs} ms: ${this.out}`);
      await sleep(50);
    }
  }

  /** Waits until the router has nothing left and sleeps (idle, so the next event tests the wake-up). */
  async idle(pool: Pool, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await pool.query(
        `SELECT 1 FROM rowcast.dispatchers WHERE id LIKE '%:' || $1::text || ':%' AND sleeping`,
        [String(this.pid)],
      );
      if (rows.length) return;
      if (Date.now() > deadline) throw new Error(`rowcast did not go idle within ${timeoutMs} ms: ${this.out}`);
      await sleep(50);
    }
  }

  /** Idle, with nothing left to deliver: a step that starts now inherits no backlog from the one before. */
  async drained(pool: Pool, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await pool.query(
        `SELECT EXISTS (SELECT 1 FROM rowcast.deliveries WHERE state IN ('pending', 'in_flight')) AS busy`,
      );
      if (!rows[0].busy) break;
      if (Date.now() > deadline)
        throw new Error(`rowcast did not deliver its backlog within ${timeoutMs} ms: ${this.out}`);
      await sleep(100);
    }
    await this.idle(pool, Math.max(1000, deadline - Date.now()));
  }

  /** Peak resident set size so far, in bytes. */
  get peakRssBytes(): number {
    const m = readRss(this.pid);
    if (m) this.peakRss = Math.max(this.peakRss, m.rss, m.peak);
    return this.peakRss;
  }

  /** SIGTERM (graceful drain), SIGKILL if it takes longer than 30 s. */
  async stop(): Promise<void> {
    clearInterval(this.sampler);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

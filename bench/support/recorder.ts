import { type ChildProcess, fork } from 'node:child_process';

export type RecorderRequest = { cmd: 'reset'; track: boolean } | { cmd: 'count' } | { cmd: 'samples' };
export type RecorderReply =
  { ready: true; port?: number } | { ok: true } | Arrivals | { ids: number[]; times: number[] };

export interface Arrivals {
  count: number;
  /** First and last arrival, ms on the monotonic clock (clock.ts). */
  first: number;
  last: number;
}

/**
 * A process that records arrivals — the webhook receiver (receiver-main.ts) or a baseline's worker
 * (baselines/graphile-worker-main.ts) — driven over IPC. Arrival times are taken in that process, on the
 * machine-wide monotonic clock, so they compare with commit times taken here.
 */
export class Recorder {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    /** The receiver's webhook URL (empty for other recorders). */
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(script: URL, env: Record<string, string> = {}): Promise<Recorder> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete childEnv.NODE_OPTIONS;
    const child = fork(script, [], {
      execArgv: ['--import', 'tsx'],
      env: childEnv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const port = await new Promise<number | undefined>((resolve, reject) => {
      child.once('message', (m: RecorderReply) =>
        'ready' in m ? resolve(m.port) : reject(new Error(`${script.pathname}: unexpected first message`)),
      );
      child.once('exit', (code) => reject(new Error(`${script.pathname} exited with ${code} before it was ready`)));
    });
    return new Recorder(child, port ? `http://127.0.0.1:${port}/hook` : '');
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** One request at a time, so each reply answers its own question. */
  private ask<T extends RecorderReply>(req: RecorderRequest): Promise<T> {
    const next = this.queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          if (!this.child.connected) return reject(new Error('recorder process is gone'));
          this.child.once('message', (m: T) => resolve(m));
          this.child.send(req);
        }),
    );
    this.queue = next.catch(() => {});
    return next;
  }

  /** Forgets what arrived; track: also record each arrival's row id and time (for latency). */
  async reset(track = false): Promise<void> {
    await this.ask({ cmd: 'reset', track });
  }

  arrivals(): Promise<Arrivals> {
    return this.ask({ cmd: 'count' });
  }

  /** Row id → arrival time (ms, monotonic clock); the first arrival of each id counts. */
  async samples(): Promise<Map<number, number>> {
    const { ids, times } = await this.ask<{ ids: number[]; times: number[] }>({ cmd: 'samples' });
    const byId = new Map<number, number>();
    ids.forEach((id, i) => byId.has(id) || byId.set(id, times[i]!));
    return byId;
  }

  /**
   * Resolves once `n` arrivals were seen, or with what arrived when limitMs has passed; rejects when none came
   * for stallMs.
   */
  async waitFor(n: number, stallMs: number, onProgress?: (a: Arrivals) => void, limitMs = Infinity): Promise<Arrivals> {
    let seen = -1;
    const began = Date.now();
    let progressAt = began;
    for (;;) {
      const a = await this.arrivals();
      if (a.count >= n || Date.now() - began > limitMs) return a;
      if (a.count !== seen) {
        seen = a.count;
        progressAt = Date.now();
        onProgress?.(a);
      } else if (Date.now() - progressAt > stallMs) {
        throw new Error(`${a.count} of ${n} arrived, then none for ${stallMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Disconnects; the process stops when IPC closes. */
  async close(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The recorder side of the protocol: answers the parent's requests from the given state. */
export function serveRecorder(
  state: { count: number; first: number; last: number; track: boolean; ids: number[]; times: number[] },
  onStop: () => Promise<void> | void,
): void {
  process.on('message', (msg: RecorderRequest) => {
    if (msg.cmd === 'reset') {
      state.count = state.first = state.last = 0;
      state.ids = [];
      state.times = [];
      state.track = msg.track;
      process.send!({ ok: true } satisfies RecorderReply);
    } else if (msg.cmd === 'count') {
      process.send!({ count: state.count, first: state.first, last: state.last } satisfies RecorderReply);
    } else if (msg.cmd === 'samples') {
      process.send!({ ids: state.ids, times: state.times } satisfies RecorderReply);
    }
  });
  process.on('disconnect', () => void Promise.resolve(onStop()).finally(() => process.exit(0)));
}

/** Records one arrival in the state (the recorders' common bookkeeping). */
export function recordArrival(
  state: { count: number; first: number; last: number; track: boolean; ids: number[]; times: number[] },
  at: number,
  id: number | undefined,
): void {
  state.count++;
  if (!state.first) state.first = at;
  state.last = at;
  if (state.track && id !== undefined) {
    state.ids.push(id);
    state.times.push(at);
  }
}

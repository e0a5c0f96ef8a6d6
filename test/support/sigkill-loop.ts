import assert from 'node:assert/strict';
import type { Pool } from '../../src/store/pool.js';
import { assertDeliveries } from './checker.js';
import { eventually } from './database.js';
import {
  explained,
  FaultScenario,
  type ItemsScenarioOptions,
  sleep,
  stopChild,
  waitAllDelivered,
  Writer,
} from './fault-harness.js';

export interface SigkillLoopOptions {
  runs: number;
  reply: NonNullable<ItemsScenarioOptions['reply']>;
  /** Settings of the `items` subscription (itemsConfig). */
  subscription?: Record<string, unknown>;
  /** How much leased work the process with this pid holds now: the victim is one caught holding some. */
  heldBy: (pool: Pool, pid: number) => Promise<number>;
  /** Waited for once every row was delivered, before the survivors stop; its result joins the run's figures. */
  afterDelivered?: (pool: Pool, run: number) => Promise<Record<string, unknown>>;
  /** Registers a cleanup for the file's `after`, in case a run fails midway. */
  cleanups: (() => Promise<void>)[];
}

/**
 * The kill loop of faults 05 and 25: per run, two or three rowcast processes while a writer commits rows; one
 * process caught holding leased work is SIGKILLed; every committed row must then be delivered (the checker), and the
 * survivors must stop cleanly. Returns each run's figures.
 */
export async function sigkillLoop(options: SigkillLoopOptions): Promise<Record<string, unknown>[]> {
  const runs: Record<string, unknown>[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const processes = run % 2 === 1 ? 2 : 3;
    const scenario = new FaultScenario();
    const { children } = scenario;
    const cleanup = () => scenario.cleanup();
    options.cleanups.push(cleanup);
    await explained(children, async () => {
      const { db, receiver } = await scenario.startOnTestDatabase({
        reply: options.reply,
        runtime: { lease: '1500ms' },
        processes,
        subscription: options.subscription,
      });
      const writer = new Writer(db.url, 5);
      const killAfterMs = 200 + Math.floor(Math.random() * 2500);
      await sleep(killAfterMs);
      // The victim is a process caught holding leases (in a random order), so every run kills one mid-delivery.
      const { victim, held } = await eventually(
        async () => {
          for (const child of [...children].sort(() => Math.random() - 0.5)) {
            const n = await options.heldBy(db.pool, child.pid);
            if (n > 0) return { victim: child, held: n };
          }
          return undefined;
        },
        `run ${run}: a process holding leases`,
        30_000,
      );
      victim.kill('SIGKILL');
      const killedAt = Date.now();
      await victim.exit(10_000);
      await sleep(1000 + Math.floor(Math.random() * 1000));
      await writer.stop();
      const ids = await waitAllDelivered(db.pool, receiver, `run ${run}: every row delivered`, 60_000, 2500);
      const result = assertDeliveries({ committed: ids, requests: receiver.requests, order: undefined });
      assert.ok(held > 0, `run ${run}: the victim held leases when it was killed (${held})`);
      const after = (await options.afterDelivered?.(db.pool, run)) ?? {};
      for (const c of children.filter((c) => c !== victim))
        assert.deepEqual(await stopChild(c), { code: 0, signal: null }, `run ${run}: a survivor stops cleanly`);
      runs.push({
        run,
        processes,
        killAfterMs,
        victimHeldAtKill: held,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
        ...after,
        lastDeliveryAfterKillMs: Math.max(...receiver.delivered.map((r) => r.at)) - killedAt,
      });
    });
    await cleanup();
    options.cleanups.pop();
  }
  return runs;
}

/** What a result report says of a kill loop's runs. */
export function sigkillFigures(runs: Record<string, unknown>[]): Record<string, unknown> {
  return {
    runs: runs.length,
    totalCommitted: runs.reduce((n, r) => n + (r.committed as number), 0),
    totalDuplicates: runs.reduce((n, r) => n + (r.duplicates as number), 0),
    perRun: runs,
  };
}

import type { Logger } from '../observability/logger.js';
import { observe } from '../observability/observe.js';
import type { Pool } from '../store/pool.js';
import { prepared } from '../store/sql.js';
import { decideDisable, type DisablePolicy } from '../model/disable-policy.js';

/*
 * Endpoint health per subscription (failing_since, dead_in_row, migration 024) and its disableAfter policy: a
 * success resets the health; failures start or continue it; when the policy trips, the subscription is disabled
 * (its deliveries wait, pending, until `rowcast resume`), with a warn log, a 'subscription:disabled' observation
 * (the live tail, rowcast_subscriptions_disabled_total) and its cause as state_reason.
 */

/** One recorded attempt result: what health needs of it. */
export interface AttemptOutcome {
  subscription: string;
  state: 'done' | 'pending' | 'dead';
}

/** Per subscription, of a batch in the order the attempts finished: only what came after its last success counts. */
export function summarize(
  outcomes: AttemptOutcome[],
): { name: string; reset: boolean; failed: boolean; dead: number }[] {
  const by = new Map<string, { name: string; reset: boolean; failed: boolean; dead: number }>();
  for (const o of outcomes) {
    const s = by.get(o.subscription) ?? { name: o.subscription, reset: false, failed: false, dead: 0 };
    if (o.state === 'done') Object.assign(s, { reset: true, failed: false, dead: 0 });
    else {
      s.failed = true;
      if (o.state === 'dead') s.dead++;
    }
    by.set(o.subscription, s);
  }
  return [...by.values()];
}

/**
 * Writes a batch's health in one statement. A success on a healthy subscription writes nothing (the WHERE skips
 * it), so the happy path costs one index lookup per flush and no row lock.
 */
const healthStatement = prepared(
  'endpoint_health',
  `
UPDATE rowcast.subscriptions s
   SET failing_since = CASE WHEN NOT r.failed THEN NULL WHEN r.reset THEN now() ELSE coalesce(s.failing_since, now()) END,
       dead_in_row = CASE WHEN r.reset THEN r.dead ELSE s.dead_in_row + r.dead END
  FROM unnest($1::text[], $2::boolean[], $3::boolean[], $4::int[]) AS r(name, reset, failed, dead)
 WHERE s.name = r.name AND (r.failed OR s.failing_since IS NOT NULL OR s.dead_in_row > 0)
RETURNING s.name, s.state, s.failing_since, s.dead_in_row, s.settings -> 'disableAfter' AS policy, now() AS now`,
);

/** Disables an active subscription (never one an operator paused); true when this call did. */
export async function disableSubscription(pool: Pool, name: string, reason: string): Promise<boolean> {
  const res = await pool.query(
    `UPDATE rowcast.subscriptions SET state = 'disabled', state_reason = $2, state_changed_at = now() WHERE name = $1 AND state = 'active'`,
    [name, reason],
  );
  if (!res.rowCount) return false;
  await pool.query(`SELECT pg_notify('rowcast_config', '')`);
  return true;
}

/** A fresh start for a resumed subscription: its failures before the resume no longer count. */
export async function resetEndpointHealth(pool: Pool, name: string): Promise<void> {
  await pool.query(
    'UPDATE rowcast.subscriptions SET failing_since = NULL, dead_in_row = 0 WHERE name = $1 AND (failing_since IS NOT NULL OR dead_in_row > 0)',
    [name],
  );
}

/**
 * Collects attempt outcomes of a delivery worker and writes them in batches (its own, beside the result batches),
 * then applies each failing subscription's disableAfter.
 */
export class EndpointHealthTracker {
  private pending: AttemptOutcome[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    /** Called when this process disabled a subscription, so that it stops claiming its deliveries at once. */
    private readonly onDisabled: (subscription: string) => void,
    private readonly delayMs = 20,
  ) {}

  note(outcome: AttemptOutcome): void {
    this.pending.push(outcome);
    this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Writes what was noted (also at shutdown); a failed write is logged and dropped: health is advisory. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.writing = this.writing.then(async () => {
      const batch = summarize(this.pending.splice(0));
      if (!batch.length) return;
      try {
        await this.write(batch);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'recording endpoint health failed');
      }
    });
    return this.writing;
  }

  private async write(batch: ReturnType<typeof summarize>): Promise<void> {
    const { rows } = await this.pool.query<{
      name: string;
      state: string;
      failing_since: Date | null;
      dead_in_row: number;
      policy: DisablePolicy | null;
      now: Date;
    }>(
      healthStatement([
        batch.map((b) => b.name),
        batch.map((b) => b.reset),
        batch.map((b) => b.failed),
        batch.map((b) => b.dead),
      ]),
    );
    for (const r of rows) {
      if (r.state !== 'active' || !r.policy) continue;
      const decision = decideDisable({ failingSince: r.failing_since, deadInRow: r.dead_in_row }, r.policy, r.now);
      if (!decision.disable) continue;
      const reason = `${decision.reason}; its deliveries wait, pending: fix the endpoint, then rowcast resume ${r.name}`;
      if (!(await disableSubscription(this.pool, r.name, reason))) continue;
      this.log.warn(
        {
          subscription: r.name,
          cause: decision.cause,
          failingSince: r.failing_since,
          deadInRow: r.dead_in_row,
          resume: `rowcast resume ${r.name}`,
        },
        `subscription disabled: ${decision.reason}`,
      );
      observe.emit('subscription:disabled', { subscription: r.name, cause: decision.cause, reason });
      this.onDisabled(r.name);
    }
  }
}

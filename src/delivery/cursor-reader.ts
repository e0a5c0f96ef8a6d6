import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import { ResultBatcher } from '../queue/result-batcher.js';
import type { PoolClient } from '../store/pool.js';
import { messagePassesFilter } from '../model/filter-policy/filter-policy.js';
import { decideSize } from '../model/delivery-outcome.js';
import type { Subscription } from '../model/sink.js';
import {
  completeLogRanges,
  INITIAL_HORIZON,
  type LeasedMessage,
  leaseLogRanges,
  type LogHorizon,
  type LogRange,
  type RangeCompletion,
} from './cursor-store.js';
import type { DeliveryResult } from './delivery-store.js';

/** What became of one message of a range. */
export type RangeOutcome =
  { kind: 'done' } | { kind: 'failed'; result: DeliveryResult } | { kind: 'handedBack'; started: boolean };

interface OpenRange {
  completion: RangeCompletion;
  remaining: number;
}

/**
 * A process's reading of the subscriptions that read their topic through a cursor: it leases ranges of the log
 * within the settled horizon it keeps (cursor-store.ts), applies filter policies in memory, counts each message's
 * outcome, and once every message of a range has one, completes the range in a group commit with the others.
 */
export class CursorReader {
  private readonly open = new Map<string, OpenRange>();
  private readonly completions: ResultBatcher<RangeCompletion>;
  private horizon: LogHorizon = INITIAL_HORIZON;
  private settleTimer: NodeJS.Timeout | null = null;

  /** `wake`: the delivery worker should claim again (dead letters were published, or the horizon may settle). */
  constructor(
    pool: Pool,
    log: Logger,
    private readonly wake: () => void,
  ) {
    this.completions = new ResultBatcher({
      write: async (batch) => {
        if ((await completeLogRanges(pool, batch)).deadLetters) wake();
      },
      log,
      what: 'cursor range',
      size: 200,
      delayMs: 5,
    });
  }

  /**
   * What the subscriptions that read a log still have room for after their due rows (`rows`, claimed on the same
   * connection before), leased from their cursors. Returns the messages to send (their filters passed).
   */
  async leaseRest(
    client: PoolClient,
    wanted: Map<string, number>,
    rows: { subscription: string }[],
    lease: { leaseMs: number; owner: string },
    subscriptions: Map<string, Subscription>,
  ): Promise<LeasedMessage[]> {
    const claimed = new Map<string, number>();
    for (const r of rows) claimed.set(r.subscription, (claimed.get(r.subscription) ?? 0) + 1);
    const rest = new Map<string, number>();
    for (const [name, n] of wanted) {
      const left = n - (claimed.get(name) ?? 0);
      if (left > 0 && subscriptions.get(name)?.readsLog) rest.set(name, left);
    }
    if (!rest.size) return [];
    const leased = await leaseLogRanges(client, rest, lease.leaseMs, lease.owner, this.horizon);
    // Horizons only move forward.
    if (BigInt(leased.horizon.settled) >= BigInt(this.horizon.settled)) this.horizon = leased.horizon;
    // Writes of messages still ran at the lease: the horizon settles at the next one, a moment later, not a poll later.
    const { barrierSeq, settled } = this.horizon;
    if (barrierSeq !== null && BigInt(barrierSeq) > BigInt(settled) && !this.settleTimer)
      this.settleTimer = setTimeout(() => {
        this.settleTimer = null;
        this.wake();
      }, SETTLE_RETRY_MS);
    return this.admit(leased.messages, ({ delivery }) => {
      const filter = subscriptions.get(delivery.subscription)?.filter;
      return !filter || messagePassesFilter(filter.policy, filter.scope, delivery.message);
    });
  }

  /** Messages of ranges handed back unsent (shutdown, or queued too long): pending rows once their range completes. */
  async handBack(items: { range?: LogRange; message: { id: string } }[], started: boolean): Promise<void> {
    const fromLog = items.filter((c) => c.range);
    for (const c of fromLog) this.settle(c.range!, c.message.id, { kind: 'handedBack', started });
    if (fromLog.length) await this.completions.drain();
  }

  /** Takes a lease's messages in; those `wanted` rejects count as done at once. Returns the messages to send. */
  private admit(messages: LeasedMessage[], wanted: (m: LeasedMessage) => boolean): LeasedMessage[] {
    const send: LeasedMessage[] = [];
    const skipped: LogRange[] = [];
    for (const m of messages) {
      const key = keyOf(m.range);
      let open = this.open.get(key);
      if (!open)
        this.open.set(key, (open = { completion: { range: m.range, failed: [], handedBack: [] }, remaining: 0 }));
      open.remaining++;
      // Filtered out or not, sent now or by an owner whose lease expired: its range keeps claim-checked bodies.
      if (claimChecked(m))
        open.completion.claimChecks = { topic: m.delivery.message.topic, ttlMs: m.delivery.limits.claimCheckTtl };
      if (wanted(m)) send.push(m);
      else skipped.push(m.range);
    }
    for (const range of skipped) this.settle(range, '', { kind: 'done' });
    return send;
  }

  settle(range: LogRange, messageId: string, outcome: RangeOutcome): void {
    const key = keyOf(range);
    const open = this.open.get(key);
    if (!open) return;
    if (outcome.kind === 'failed') {
      const { deliveryId: _id, lease: _lease, attempt: _attempt, ...result } = outcome.result;
      open.completion.failed.push({ messageId, result });
    } else if (outcome.kind === 'handedBack') open.completion.handedBack.push({ messageId, started: outcome.started });
    if (--open.remaining > 0) return;
    this.open.delete(key);
    this.completions.add(open.completion);
  }

  /** Writes the completed ranges now (shutdown). */
  async drain(): Promise<void> {
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    await this.completions.drain();
  }
}

/** A message its topic sends as a claim-check link (the delivery worker's size rule, decideSize). */
function claimChecked({ delivery: { message, limits } }: LeasedMessage): boolean {
  return (
    limits.largeMessages === 'claim-check' &&
    decideSize(Buffer.byteLength(message.body), limits, message.topic).send === 'claim-check'
  );
}

/** How soon a lease is tried again when its horizon had not settled. */
const SETTLE_RETRY_MS = 2;

/** A range taken over after its lease expired is a new range, though it starts at the same place. */
const keyOf = (range: LogRange) => `${range.subscription}\0${range.fromSeq}\0${range.lease}`;

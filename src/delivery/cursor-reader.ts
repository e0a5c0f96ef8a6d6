import type { Logger } from '../observability/logger.js';
import type { Pool } from '../store/pool.js';
import { ResultBatcher } from '../queue/result-batcher.js';
import type { PoolClient } from '../store/pool.js';
import { messagePassesFilter } from '../model/filter-policy/filter-policy.js';
import { decideBodySize } from '../model/delivery-outcome.js';
import type { Subscription } from '../model/sink.js';
import { completeLogRanges, claimRowsAndRanges, type RangeCompletion } from './cursor-store.js';
import {
  HeldEntries,
  INITIAL_HORIZON,
  type LeasedMessage,
  type LogHorizon,
  type LogRange,
  readLease,
} from '../store/log-leases.js';
import type { SqlRow } from '../store/sql.js';
import { claimDeliveries, type ClaimedDelivery, type DeliveryResult } from './delivery-store.js';

/** What became of one message of a range. */
export type RangeOutcome =
  { kind: 'done' } | { kind: 'failed'; result: DeliveryResult } | { kind: 'handedBack'; started: boolean };

interface OpenRange {
  completion: RangeCompletion;
  remaining: number;
  /** When the range was leased and for how long: a message started later still runs under the range's lease. */
  lease: RangeLease;
  /** FIFO: the groups of the range, and the group of each message sent (the one running in its group). */
  groups: Map<string, FifoGroup> | null;
  groupOf: Map<string, string> | null;
}

/** A FIFO group within a range: at most one message running, the rest waiting behind it in seq order. */
interface FifoGroup {
  running: boolean;
  /** A message of the group was not delivered (failed, handed back, held): the rest become rows behind it. */
  stopped: boolean;
  waiting: LeasedMessage[];
}

export interface RangeLease {
  claimedAt: number;
  leaseMs: number;
}

/**
 * A process's reading of the subscriptions that read their topic through a cursor: it leases ranges of the log
 * within the settled horizon it keeps (cursor-store.ts), applies filter policies in memory, counts each message's
 * outcome, and once every message of a range has one, completes the range in a group commit with the others.
 *
 * On a FIFO topic a range's groups go concurrently, but each group's messages one after another in seq order: the
 * next starts (`start`) only once the one before it was delivered. A message whose group a delivery row holds
 * back, or that follows one of its group that was not delivered, is not sent: it becomes a pending row behind it
 * when the range completes, where the rows' FIFO claim rule keeps the order.
 */
export class CursorReader {
  private readonly open = new Map<string, OpenRange>();
  private readonly completions: ResultBatcher<RangeCompletion>;
  private horizon: LogHorizon = INITIAL_HORIZON;
  /** The messages of the segment entries this process's cursors leased lately: each event is read once, not per cursor. */
  private readonly held = new HeldEntries();
  private shared: { subscriptions: Map<string, Subscription>; topics: ReadonlySet<string> } | null = null;
  private settleTimer: NodeJS.Timeout | null = null;

  /**
   * `wake`: the delivery worker should claim again (dead letters were published, the horizon may settle, or a FIFO
   * range completed, so its cursor's next range may be leased). `start`: a FIFO message whose turn came after its
   * lease; false if the worker takes no more work (stopping), and the message is handed back.
   */
  constructor(
    pool: Pool,
    log: Logger,
    private readonly wake: () => void,
    private readonly start: (message: LeasedMessage, lease: RangeLease) => boolean,
  ) {
    this.completions = new ResultBatcher({
      write: async (batch) => {
        const { deadLetters } = await completeLogRanges(pool, batch);
        if (deadLetters || batch.some((c) => c.fifo)) wake();
      },
      log,
      what: 'cursor range',
      size: 200,
      delayMs: 5,
    });
  }

  /**
   * Claims the wanted subscriptions' due delivery rows and, for those that read a log, leases what their rows left
   * of their room from their cursors, in one statement. Returns the rows, and the leased messages to send (their
   * filters passed; on FIFO topics the first of each group that nothing holds back).
   */
  async claim(
    client: PoolClient,
    wanted: Map<string, number>,
    lease: { leaseMs: number; owner: string; claimedAt: number },
    subscriptions: Map<string, Subscription>,
  ): Promise<{ rows: ClaimedDelivery[]; messages: LeasedMessage[] }> {
    const readers = [...wanted.keys()].filter((name) => subscriptions.get(name)?.readsLog);
    if (!readers.length)
      return { rows: await claimDeliveries(client, wanted, lease.leaseMs, lease.owner), messages: [] };
    const claimed = await claimRowsAndRanges(
      client,
      wanted,
      readers,
      lease.leaseMs,
      lease.owner,
      this.horizon,
      this.held.windows(this.sharedTopics(subscriptions, readers)),
    );
    if (!claimed.horizon) return { rows: claimed.rows, messages: [] };
    return { rows: claimed.rows, messages: this.take(claimed.horizon, claimed.messages, lease, subscriptions) };
  }

  /** Where the log is settled as this process last saw it: a lease by a statement appending messages starts there. */
  get settledHorizon(): LogHorizon {
    return this.horizon;
  }

  /**
   * A lease made by the statement that appended the messages (routing, a function's results; `rows`:
   * rowcast.lease_log_ranges', horizon first). Returns the messages to send, as claim() does.
   */
  adoptLease(
    rows: SqlRow[],
    lease: { leaseMs: number; claimedAt: number },
    subscriptions: Map<string, Subscription>,
  ): LeasedMessage[] {
    const read = readLease(rows, this.held.windows(this.sharedTopics(subscriptions)));
    return this.take(read.horizon, read.messages, lease, subscriptions);
  }

  /**
   * The topics (of these subscriptions, or of all) that more than one subscription reads through a cursor: only
   * their entries are leased again by another cursor, so only they are worth holding (HeldEntries).
   */
  private sharedTopics(subscriptions: Map<string, Subscription>, of?: string[]): ReadonlySet<string> {
    if (this.shared?.subscriptions !== subscriptions) {
      const readers = new Map<string, number>();
      for (const s of subscriptions.values()) if (s.readsLog) readers.set(s.topic, (readers.get(s.topic) ?? 0) + 1);
      this.shared = {
        subscriptions,
        topics: new Set([...readers].filter(([, n]) => n > 1).map(([topic]) => topic)),
      };
    }
    const { topics } = this.shared;
    if (!of) return topics;
    return new Set(of.map((name) => subscriptions.get(name)!.topic).filter((topic) => topics.has(topic)));
  }

  /** Takes a lease's horizon and messages in; returns the messages to send (their filters passed). */
  private take(
    horizon: LogHorizon,
    leased: LeasedMessage[],
    lease: { leaseMs: number; claimedAt: number },
    subscriptions: Map<string, Subscription>,
  ): LeasedMessage[] {
    // Horizons only move forward.
    if (BigInt(horizon.settled) >= BigInt(this.horizon.settled)) this.horizon = horizon;
    // Writes of messages still ran at the lease: the horizon settles at the next one, a moment later, not a poll later.
    const { barrierSeq, settled } = this.horizon;
    if (barrierSeq !== null && BigInt(barrierSeq) > BigInt(settled) && !this.settleTimer)
      this.settleTimer = setTimeout(() => {
        this.settleTimer = null;
        this.wake();
      }, SETTLE_RETRY_MS);
    return this.admit(leased, lease, ({ delivery }) => {
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

  /**
   * Takes a lease's messages in (in seq order per range); those `wanted` rejects count as done at once. Returns the
   * messages to send now: on FIFO topics the first of each group that nothing holds back.
   */
  private admit(
    messages: LeasedMessage[],
    lease: { leaseMs: number; claimedAt: number },
    wanted: (m: LeasedMessage) => boolean,
  ): LeasedMessage[] {
    const send: LeasedMessage[] = [];
    const skipped: LogRange[] = [];
    const held: LeasedMessage[] = [];
    for (const m of messages) {
      const key = keyOf(m.range);
      let open = this.open.get(key);
      if (open) open.remaining++;
      else
        this.open.set(
          key,
          (open = {
            completion: { range: m.range, failed: [], handedBack: [], fifo: m.fifo !== null },
            remaining: 1,
            lease: { claimedAt: lease.claimedAt, leaseMs: lease.leaseMs },
            groups: m.fifo ? new Map() : null,
            groupOf: m.fifo ? new Map() : null,
          }),
        );
      // Filtered out or not, sent now or by an owner whose lease expired: its range keeps claim-checked bodies.
      if (claimChecked(m))
        open.completion.claimChecks = { topic: m.delivery.message.topic, ttlMs: m.delivery.limits.claimCheckTtl };
      if (!wanted(m)) skipped.push(m.range);
      else if (!m.fifo || !open.groups) send.push(m);
      else {
        let group = open.groups.get(m.fifo.group);
        if (!group) open.groups.set(m.fifo.group, (group = { running: false, stopped: false, waiting: [] }));
        open.groupOf!.set(m.delivery.message.id, m.fifo.group);
        if (m.fifo.held || group.stopped) {
          group.stopped = true;
          held.push(m);
        } else if (group.running) group.waiting.push(m);
        else {
          group.running = true;
          send.push(m);
        }
      }
    }
    for (const range of skipped) this.settle(range, '', { kind: 'done' });
    for (const m of held) this.settle(m.range, m.delivery.message.id, { kind: 'handedBack', started: false });
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
    const name = open.groupOf?.get(messageId);
    if (name !== undefined) {
      open.groupOf!.delete(messageId);
      const group = open.groups!.get(name)!;
      group.running = false;
      if (outcome.kind !== 'done') group.stopped = true;
      this.next(open, group);
    }
    if (--open.remaining > 0) return;
    this.open.delete(key);
    this.completions.add(open.completion);
  }

  /**
   * Starts a FIFO group's next message once the one before it was delivered; after one that was not, the rest of
   * the group in the range are handed back unsent (pending rows behind it). `start` may settle a message at once
   * (one too large to send): the group's state is set before it, so a nested settle carries on from there.
   */
  private next(open: OpenRange, group: FifoGroup): void {
    while (!group.running && group.waiting.length) {
      const m = group.waiting.shift()!;
      if (!group.stopped) {
        group.running = true;
        if (this.start(m, open.lease)) continue;
        group.running = false;
        group.stopped = true;
      }
      open.groupOf!.delete(m.delivery.message.id);
      open.completion.handedBack.push({ messageId: m.delivery.message.id, started: false });
      open.remaining--;
    }
  }

  /** Writes the completed ranges now (shutdown). */
  async drain(): Promise<void> {
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    await this.completions.drain();
  }
}

/** A message its topic sends as a claim-check link (the delivery worker's size rule, decideBodySize). */
function claimChecked({ delivery: { message, limits } }: LeasedMessage): boolean {
  return (
    limits.largeMessages === 'claim-check' && decideBodySize(message.body, limits, message.topic).send === 'claim-check'
  );
}

/** How soon a lease is tried again when its horizon had not settled. */
const SETTLE_RETRY_MS = 2;

/** A range taken over after its lease expired is a new range, though it starts at the same place. */
const keyOf = (range: LogRange) => `${range.subscription}\0${range.fromSeq}\0${range.lease}`;

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { observe } from './observe.js';

/**
 * Prometheus metrics of one rowcast process (prom-client, its own registry): names start with `rowcast_`, values
 * are in base units (seconds, ratios), and labels are bounded by the config (table, op, stage, function,
 * subscription, protocol, outcome) — never an id. Counters and histograms of work are this process's, fed by
 * `observe`; backlog gauges are read from the database at scrape time (the same for every process: aggregate
 * them with max(), not sum()).
 */
export interface DatabaseSnapshot {
  /** Pending (and in-flight) work and the age of its oldest item, per stage. */
  stages: { stage: 'routing' | 'invocations' | 'deliveries'; pending: number; oldestAgeSeconds: number | null }[];
  /** Every subscription, its protocol and its state (active, paused, disabled by its endpoint). */
  subscriptions: { name: string; protocol: string; state: string }[];
  /** Every capture's table ("schema.table") and operation: their counters exist, at 0, before the first event. */
  captures: { table: string; op: string }[];
  /** Every declared function. */
  functions: string[];
  /** Deliveries per subscription and state (pending, in_flight, dead), where there are any. */
  deliveries: { subscription: string; state: string; count: number }[];
  /** Events captured since the previous snapshot, per table ("schema.table") and operation. */
  capturedSince: { table: string; op: string; count: number }[];
  /** pg_notification_queue_usage(): the fraction of the NOTIFY queue in use (0–1). */
  notifyQueueUsage: number;
  /** The replication slot of logical captures, if there is one: whether a process streams it, and how far behind it is. */
  slots: { slot: string; active: boolean; lagBytes: number }[];
}

export interface Metrics {
  readonly registry: Registry;
  /** Prometheus text format. */
  render(): Promise<string>;
  readonly contentType: string;
  close(): void;
}

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Database reads are shared by all gauges of a scrape and cached this long. */
const SNAPSHOT_TTL_MS = 2000;

export function createMetrics(readDatabase: () => Promise<DatabaseSnapshot>): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'rowcast_' });

  let cached: { at: number; snapshot: Promise<DatabaseSnapshot> } | null = null;
  const snapshot = () => {
    if (!cached || Date.now() - cached.at > SNAPSHOT_TTL_MS) {
      const pending = readDatabase();
      cached = { at: Date.now(), snapshot: pending };
      // A failed read is not cached: the next scrape tries again.
      pending.catch(() => {
        if (cached?.snapshot === pending) cached = null;
      });
    }
    return cached.snapshot;
  };

  // Each snapshot's newly captured events are added once, however many scrapes share the cached snapshot.
  const counted = new WeakSet<DatabaseSnapshot>();
  new Counter({
    name: 'rowcast_events_captured_total',
    help: 'Row changes captured (committed), per table and operation (read from the database).',
    labelNames: ['table', 'op'],
    registers,
    async collect() {
      const s = await snapshot();
      for (const c of s.captures) this.inc({ table: c.table, op: c.op }, 0);
      if (counted.has(s)) return;
      counted.add(s);
      for (const c of s.capturedSince) this.inc({ table: c.table, op: c.op }, c.count);
    },
  });
  new Gauge({
    name: 'rowcast_pending',
    help: 'Work waiting or in flight per stage: routing (captured events), invocations, deliveries.',
    labelNames: ['stage'],
    registers,
    async collect() {
      const s = await snapshot();
      for (const st of s.stages) this.set({ stage: st.stage }, st.pending);
    },
  });
  new Gauge({
    name: 'rowcast_oldest_pending_age_seconds',
    help: 'Age of the oldest pending item per stage (0 when nothing is pending).',
    labelNames: ['stage'],
    registers,
    async collect() {
      for (const st of (await snapshot()).stages) this.set({ stage: st.stage }, st.oldestAgeSeconds ?? 0);
    },
  });
  new Gauge({
    name: 'rowcast_deliveries',
    help: 'Deliveries per subscription that are pending, in flight, or dead (dead letters waiting for redrive).',
    labelNames: ['subscription', 'state'],
    registers,
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const { name } of s.subscriptions)
        for (const state of ['pending', 'in_flight', 'dead']) this.set({ subscription: name, state }, 0);
      for (const d of s.deliveries) this.set({ subscription: d.subscription, state: d.state }, d.count);
    },
  });
  new Gauge({
    name: 'rowcast_subscription_state',
    help: "A subscription's state: 1 for the current one (active, paused, disabled — by its endpoint's HTTP 410), 0 for the others.",
    labelNames: ['subscription', 'state'],
    registers,
    async collect() {
      const s = await snapshot();
      this.reset();
      for (const sub of s.subscriptions)
        for (const state of ['active', 'paused', 'disabled'])
          this.set({ subscription: sub.name, state }, sub.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rowcast_notify_queue_usage_ratio',
    help: "Fraction of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage()); near 1, NOTIFY fails.",
    registers,
    async collect() {
      this.set((await snapshot()).notifyQueueUsage);
    },
  });

  new Gauge({
    name: 'rowcast_capture_slot_lag_bytes',
    help: 'Write-ahead log that the replication slot of logical captures still holds (not yet confirmed as events); alert when it grows: PostgreSQL keeps that log on disk.',
    labelNames: ['slot'],
    registers,
    async collect() {
      this.reset();
      for (const s of (await snapshot()).slots) this.set({ slot: s.slot }, s.lagBytes);
    },
  });
  new Gauge({
    name: 'rowcast_capture_slot_active',
    help: '1 while a rowcast process streams the replication slot of logical captures, 0 when none does (nothing is being captured).',
    labelNames: ['slot'],
    registers,
    async collect() {
      this.reset();
      for (const s of (await snapshot()).slots) this.set({ slot: s.slot }, s.active ? 1 : 0);
    },
  });

  // The counters of work exist at 0 for every declared function and subscription from the first scrape on: a series
  // that appears only with its first increment hides that increment from rate() and increase().
  const routed = new Counter({
    name: 'rowcast_events_routed_total',
    help: 'Captured events this process routed to topics and functions.',
    registers,
  });
  const invocations = new Counter({
    name: 'rowcast_invocations_total',
    help: 'Function invocation attempts by this process, by outcome (done, retry, failed).',
    labelNames: ['function', 'outcome'],
    registers,
    async collect() {
      for (const fn of (await snapshot()).functions)
        for (const outcome of ['done', 'retry', 'failed']) this.inc({ function: fn, outcome }, 0);
    },
  });
  const invocationSeconds = new Histogram({
    name: 'rowcast_invocation_duration_seconds',
    help: 'Duration of function invocation attempts.',
    labelNames: ['function'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const attempts = new Counter({
    name: 'rowcast_delivery_attempts_total',
    help: 'Delivery attempts by this process, by subscription, protocol and outcome (delivered, failed, dead).',
    labelNames: ['subscription', 'protocol', 'outcome'],
    registers,
    async collect() {
      for (const sub of (await snapshot()).subscriptions)
        for (const outcome of ['delivered', 'failed', 'dead'])
          this.inc({ subscription: sub.name, protocol: sub.protocol, outcome }, 0);
    },
  });
  const attemptSeconds = new Histogram({
    name: 'rowcast_delivery_attempt_duration_seconds',
    help: 'Duration of delivery attempts (send to answer).',
    labelNames: ['protocol'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  // zero() would also wipe what was observed: only subscriptions without a series yet are zeroed.
  const latencySeries = new Set<string>();
  const latency = new Histogram({
    name: 'rowcast_delivery_latency_seconds',
    help: "From a message's creation (routing, right after the writer's commit) to the subscriber's acknowledgement.",
    labelNames: ['subscription'],
    buckets: SECONDS_BUCKETS,
    registers,
    async collect() {
      for (const { name } of (await snapshot()).subscriptions) {
        if (latencySeries.has(name)) continue;
        latencySeries.add(name);
        this.zero({ subscription: name });
      }
    },
  });
  const deadLetters = new Counter({
    name: 'rowcast_dead_letters_total',
    help: 'Deliveries this process gave up on (dead, until redriven).',
    labelNames: ['subscription'],
    registers,
    async collect() {
      for (const { name } of (await snapshot()).subscriptions) this.inc({ subscription: name }, 0);
    },
  });

  const disabled = new Counter({
    name: 'rowcast_subscriptions_disabled_total',
    help: 'Subscriptions this process disabled, by cause: failing_for and dead_deliveries (its disableAfter), endpoint_gone (HTTP 410).',
    labelNames: ['subscription', 'cause'],
    registers,
    async collect() {
      for (const { name } of (await snapshot()).subscriptions)
        for (const cause of ['failing_for', 'dead_deliveries', 'endpoint_gone'])
          this.inc({ subscription: name, cause }, 0);
    },
  });

  const off = [
    observe.on('subscription:disabled', (d) => disabled.inc({ subscription: d.subscription, cause: d.cause })),
    observe.on('events:routed', (e) => routed.inc(e.events)),
    observe.on('invocation:finished', (i) => {
      invocations.inc({ function: i.function, outcome: i.outcome });
      invocationSeconds.observe({ function: i.function }, i.durationMs / 1000);
    }),
    observe.on('delivery:attempted', (d) => {
      attempts.inc({ subscription: d.subscription, protocol: d.protocol, outcome: d.outcome });
      attemptSeconds.observe({ protocol: d.protocol }, d.durationMs / 1000);
      if (d.outcome === 'delivered' && d.latencyMs !== null) {
        latencySeries.add(d.subscription);
        latency.observe({ subscription: d.subscription }, Math.max(0, d.latencyMs) / 1000);
      }
      if (d.outcome === 'dead') deadLetters.inc({ subscription: d.subscription });
    }),
  ];

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close() {
      for (const o of off) o();
      registry.clear();
    },
  };
}

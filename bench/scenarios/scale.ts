/**
 * 6. Scale: how cost grows as the work grows (issue 20), in the same run. Drain rate at backlogs of 10k, 100k and
 * 1M events to one webhook subscription, with the peer a user would build (graphile-worker + signed undici POST,
 * default and batched) draining the same backlog in every row; fan-out of the same number of deliveries to 1, 10
 * and 100 subscriptions; 1, 2 and 4 rowcast processes on one PostgreSQL draining one backlog (with every row's id
 * recorded, so lost or repeated work shows); rowcast's peak RSS against the backlog (from the same drains).
 * Each ratio is to the same run's smallest case (or to the peer at the same backlog).
 */
import { GRAPHILE_BATCHED, GRAPHILE_DEFAULT } from '../baselines/graphile-worker.js';
import type { BenchContext, Scenario } from '../support/context.js';
import type { Measurement } from '../support/report.js';
import { spread } from '../support/stats.js';
import { drainGraphile, drainRowcast } from './drain.js';

const k = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));
const mb = (bytes: number) => bytes / 2 ** 20;

/** Repetitions of a series, and how many of them stopped at the watch limit (their rate counts what arrived). */
class Series {
  readonly values: number[] = [];
  capped = 0;
  readonly notes: string[] = [];
  push(value: number, capped: boolean): void {
    this.values.push(value);
    if (capped) this.capped++;
  }
}

export const scale: Scenario = {
  id: 'scale',
  title: 'scale: how drain rate, fan-out, processes and memory grow with the work',
  async run(ctx: BenchContext) {
    const { profile, results } = ctx;
    const { backlogs, large, largeReps, largeWatchMs, fanout, processes } = profile.scale;
    const repsOf = (events: number) => (events >= large ? largeReps : profile.drain.reps);
    const watchOf = (events: number) => (events >= large ? largeWatchMs : profile.drain.maxMs);
    const how = (events: number, s: Series) => {
      const parts: string[] = [];
      if (events >= large && largeReps < profile.drain.reps) parts.push(`${largeReps} repetition(s) at this backlog, ${profile.drain.reps} at the others`);
      if (events >= large) parts.push(`watched for at most ${watchOf(events) / 1000} s`);
      if (s.capped) parts.push(`stopped at the ${watchOf(events) / 1000} s limit in ${s.capped}: the rate counts what arrived`);
      return [...parts, ...s.notes].join('; ');
    };

    // ── Drain rate and RSS against backlog, the peer beside rowcast at each backlog.
    const drains: Array<{ events: number; rowcast: Series; rss: Series; peerDefault: Series; peerBatched: Series }> = [];
    for (const events of backlogs) {
      const row = { events, rowcast: new Series(), rss: new Series(), peerDefault: new Series(), peerBatched: new Series() };
      drains.push(row);
      for (let rep = 0; rep < repsOf(events); rep++) {
        const tag = `scale ${k(events)} backlog ${rep + 1}/${repsOf(events)}`;
        const r = await drainRowcast(ctx, 'one', events, `${tag} rowcast`, { watchMs: watchOf(events) });
        row.rowcast.push(r.rate, r.capped);
        row.rss.push(mb(r.peakRss), false);
        if (r.capped) row.rowcast.notes.push(`${r.delivered.toLocaleString('en-US')} delivered in repetition ${rep + 1}`);
        ctx.log(`${tag} rowcast: ${Math.round(r.rate)} deliveries/s (${r.delivered.toLocaleString('en-US')} delivered), peak RSS ${Math.round(mb(r.peakRss))} MB`);
        for (const [series, settings] of [[row.peerDefault, GRAPHILE_DEFAULT], [row.peerBatched, GRAPHILE_BATCHED]] as const) {
          const p = await drainGraphile(ctx, settings, events, true, watchOf(events));
          series.push(p.rate, p.capped);
          if (p.capped) series.notes.push(`${p.delivered.toLocaleString('en-US')} delivered in repetition ${rep + 1}`);
          ctx.log(`${tag} peer ${settings.label} + signed POST: ${Math.round(p.rate)} deliveries/s (${p.delivered.toLocaleString('en-US')} delivered)`);
        }
      }
    }
    const first = drains[0]!;
    let firstRowcast: Measurement | undefined;
    let firstDefault: Measurement | undefined;
    let firstBatched: Measurement | undefined;
    let firstRss: Measurement | undefined;
    for (const d of drains) {
      const peerDefault = results.add({ scenario: 'scale', name: `peer: ${GRAPHILE_DEFAULT.label} + signed undici POST: ${k(d.events)} backlog → webhook`, unit: 'deliveries/s', value: spread(d.peerDefault.values), note: how(d.events, d.peerDefault) });
      const peerBatched = results.add({ scenario: 'scale', name: `peer: ${GRAPHILE_BATCHED.label} + signed undici POST: ${k(d.events)} backlog → webhook`, unit: 'deliveries/s', value: spread(d.peerBatched.values), note: how(d.events, d.peerBatched) });
      const rowcast = results.add({ scenario: 'scale', name: `rowcast: ${k(d.events)} backlog → 1 webhook subscription`, unit: 'deliveries/s', value: spread(d.rowcast.values), note: how(d.events, d.rowcast) });
      results.ratio(rowcast, peerDefault, `peer default at ${k(d.events)}`);
      results.ratio(rowcast, peerBatched, `peer batched at ${k(d.events)}`);
      if (d !== first) {
        results.ratio(rowcast, firstRowcast!, `rowcast at ${k(first.events)}`);
        results.ratio(peerDefault, firstDefault!, `itself at ${k(first.events)}`);
        results.ratio(peerBatched, firstBatched!, `itself at ${k(first.events)}`);
      } else {
        [firstRowcast, firstDefault, firstBatched] = [rowcast, peerDefault, peerBatched];
      }
    }
    for (const d of drains) {
      const rss = results.add({ scenario: 'scale', name: `rowcast peak RSS draining a ${k(d.events)} backlog (the drains above)`, unit: 'MB', value: spread(d.rss.values) });
      if (d === first) firstRss = rss;
      else results.ratio(rss, firstRss!, `at ${k(first.events)}`);
    }

    // ── Fan-out: the same number of deliveries, spread over 1, 10 and 100 subscriptions.
    let oneSub: Measurement | undefined;
    for (const subs of fanout.subscriptions) {
      const events = Math.max(1, Math.round(fanout.deliveries / subs));
      const s = new Series();
      for (let rep = 0; rep < profile.drain.reps; rep++) {
        const tag = `scale fan-out ${subs} subscription(s) ${rep + 1}/${profile.drain.reps}`;
        const r = await drainRowcast(ctx, 'fanout', events, tag, { subscriptions: subs });
        s.push(r.rate, r.capped);
        ctx.log(`${tag}: ${Math.round(r.rate)} deliveries/s`);
      }
      const m = results.add({ scenario: 'scale', name: `rowcast: fan-out, ${k(events)} events → ${subs} subscription(s) (${k(events * subs)} deliveries)`, unit: 'deliveries/s', value: spread(s.values), note: s.capped ? `stopped at the ${profile.drain.maxMs / 1000} s limit in ${s.capped} of ${s.values.length}` : undefined });
      if (oneSub) results.ratio(m, oneSub, '1 subscription');
      else oneSub = m;
    }

    // ── Work sharing: 1, 2 and 4 processes on one database draining one backlog; every row's id is recorded.
    let oneProcess: Measurement | undefined;
    for (const count of processes.counts) {
      const s = new Series();
      const rss: number[] = [];
      for (let rep = 0; rep < profile.drain.reps; rep++) {
        const tag = `scale ${count} process(es) ${rep + 1}/${profile.drain.reps}`;
        const r = await drainRowcast(ctx, 'one', processes.events, tag, { processes: count, track: true });
        s.push(r.rate, r.capped);
        rss.push(...r.peakRssEach.map(mb));
        const distinct = r.distinct ?? 0;
        if (!r.capped && distinct < processes.events) s.notes.push(`repetition ${rep + 1}: ${(processes.events - distinct).toLocaleString('en-US')} rows never arrived`);
        if (r.delivered > distinct) s.notes.push(`repetition ${rep + 1}: ${(r.delivered - distinct).toLocaleString('en-US')} duplicate deliveries`);
        ctx.log(`${tag}: ${Math.round(r.rate)} deliveries/s, ${distinct.toLocaleString('en-US')} distinct rows of ${r.delivered.toLocaleString('en-US')} arrivals, peak RSS ${r.peakRssEach.map((b) => Math.round(mb(b))).join('/')} MB`);
      }
      const notes = [...(s.capped ? [`stopped at the ${profile.drain.maxMs / 1000} s limit in ${s.capped} of ${s.values.length}`] : []), ...s.notes, `peak RSS per process ${Math.round(Math.min(...rss))}–${Math.round(Math.max(...rss))} MB`];
      const m = results.add({ scenario: 'scale', name: `rowcast: ${count} process(es) on one PostgreSQL, ${k(processes.events)} backlog → 1 subscription`, unit: 'deliveries/s', value: spread(s.values), note: notes.join('; ') });
      if (oneProcess) results.ratio(m, oneProcess, '1 process');
      else oneProcess = m;
    }
  },
};

/**
 * 6. Scale: how cost grows as the work grows (issue 20), in the same run. Drain rate at backlogs of 10k, 100k and
 * 1M events to one webhook subscription, with the peer a user would build (graphile-worker + signed undici POST,
 * default and batched) draining the same backlog in every row; fan-out of the same number of deliveries to 1, 10
 * and 100 subscriptions; 1, 2 and 4 rowcast processes on one PostgreSQL draining one backlog (with every row's id
 * recorded, so lost or repeated work shows); rowcast's peak RSS against the backlog (from the same drains).
 * Each ratio is to the same run's smallest case (or to the peer at the same backlog). Every rowcast drain runs twice,
 * through delivery rows and then with its subscriptions reading through cursors (`cursor: true`, issue 20), back to
 * back so the machine's drift hits both; each `rowcast (cursor): …` row sits under its rows-path row.
 */
import { GRAPHILE_BATCHED, GRAPHILE_DEFAULT } from '../baselines/graphile-worker.js';
import type { BenchContext, Scenario } from '../support/context.js';
import type { Measurement, Results } from '../support/report.js';
import { spread } from '../support/stats.js';
import { drainGraphile, drainRowcast, type RowcastDrain } from './drain.js';

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

/** Today's delivery rows, then the same drain through cursors. */
const PATHS = [false, true] as const;
const pathTag = (cursor: boolean) => (cursor ? ' (cursor)' : '');

/**
 * A cursor figure right under its rows-path figure, with its ratio to it and (unless it is the smallest case) to
 * the cursor's own smallest case, so the cursor's growth reads like the rows path's.
 */
function cursorBeside(
  results: Results,
  rows: Measurement,
  cursor: Omit<Measurement, 'scenario' | 'unit'>,
  smallest?: { cursor: Measurement; label: string },
): Measurement {
  const m = results.add({ scenario: 'scale', unit: rows.unit, ...cursor });
  results.ratio(m, rows, 'rows path');
  if (smallest) results.ratio(m, smallest.cursor, `cursor at ${smallest.label}`);
  return m;
}

export const scale: Scenario = {
  id: 'scale',
  title: 'scale: how drain rate, fan-out, processes and memory grow with the work (rows and cursor)',
  async run(ctx: BenchContext) {
    const { profile, results } = ctx;
    const { backlogs, large, largeReps, largeWatchMs, fanout, processes } = profile.scale;
    const repsOf = (events: number) => (events >= large ? largeReps : profile.drain.reps);
    const watchOf = (events: number) => (events >= large ? largeWatchMs : profile.drain.maxMs);
    const how = (events: number, s: Series) => {
      const parts: string[] = [];
      if (events >= large && largeReps < profile.drain.reps)
        parts.push(`${largeReps} repetition(s) at this backlog, ${profile.drain.reps} at the others`);
      if (events >= large) parts.push(`watched for at most ${watchOf(events) / 1000} s from the first delivery`);
      if (s.capped)
        parts.push(`stopped at the ${watchOf(events) / 1000} s limit in ${s.capped}: the rate counts what arrived`);
      return [...parts, ...s.notes].join('; ');
    };
    const cappedNote = (s: Series) =>
      s.capped
        ? `stopped at the ${profile.drain.maxMs / 1000} s limit in ${s.capped} of ${s.values.length}`
        : undefined;

    // ── Drain rate and RSS against backlog: the peer beside rowcast at each backlog, rowcast on both paths.
    interface BacklogRow {
      events: number;
      rows: Series;
      rss: Series;
      cursor: Series;
      cursorRss: Series;
      peerDefault: Series;
      peerBatched: Series;
    }
    const drains: BacklogRow[] = [];
    for (const events of backlogs) {
      const row: BacklogRow = {
        events,
        rows: new Series(),
        rss: new Series(),
        cursor: new Series(),
        cursorRss: new Series(),
        peerDefault: new Series(),
        peerBatched: new Series(),
      };
      drains.push(row);
      for (let rep = 0; rep < repsOf(events); rep++) {
        const tag = `scale ${k(events)} backlog ${rep + 1}/${repsOf(events)}`;
        for (const cursor of PATHS) {
          const label = `${tag} rowcast${pathTag(cursor)}`;
          const r = await drainRowcast(ctx, 'one', events, label, { watchMs: watchOf(events), cursor });
          const [rate, rss] = cursor ? [row.cursor, row.cursorRss] : [row.rows, row.rss];
          rate.push(r.rate, r.capped);
          rss.push(mb(r.peakRss), false);
          if (r.capped) rate.notes.push(`${r.delivered.toLocaleString('en-US')} delivered in repetition ${rep + 1}`);
          ctx.log(
            `${label}: ${Math.round(r.rate)} deliveries/s (${r.delivered.toLocaleString('en-US')} delivered), peak RSS ${Math.round(mb(r.peakRss))} MB`,
          );
        }
        for (const [series, settings] of [
          [row.peerDefault, GRAPHILE_DEFAULT],
          [row.peerBatched, GRAPHILE_BATCHED],
        ] as const) {
          const p = await drainGraphile(ctx, settings, events, true, watchOf(events));
          series.push(p.rate, p.capped);
          if (p.capped) series.notes.push(`${p.delivered.toLocaleString('en-US')} delivered in repetition ${rep + 1}`);
          ctx.log(
            `${tag} peer ${settings.label} + signed POST: ${Math.round(p.rate)} deliveries/s (${p.delivered.toLocaleString('en-US')} delivered)`,
          );
        }
      }
    }
    const first = drains[0]!;
    const firstLabel = k(first.events);
    let firstRowcast: Measurement | undefined;
    let firstCursor: Measurement | undefined;
    let firstDefault: Measurement | undefined;
    let firstBatched: Measurement | undefined;
    for (const d of drains) {
      const peerDefault = results.add({
        scenario: 'scale',
        name: `peer: ${GRAPHILE_DEFAULT.label} + signed undici POST: ${k(d.events)} backlog → webhook`,
        unit: 'deliveries/s',
        value: spread(d.peerDefault.values),
        note: how(d.events, d.peerDefault),
      });
      const peerBatched = results.add({
        scenario: 'scale',
        name: `peer: ${GRAPHILE_BATCHED.label} + signed undici POST: ${k(d.events)} backlog → webhook`,
        unit: 'deliveries/s',
        value: spread(d.peerBatched.values),
        note: how(d.events, d.peerBatched),
      });
      const what = `${k(d.events)} backlog → 1 webhook subscription`;
      const rowcast = results.add({
        scenario: 'scale',
        name: `rowcast: ${what}`,
        unit: 'deliveries/s',
        value: spread(d.rows.values),
        note: how(d.events, d.rows),
      });
      results.ratio(rowcast, peerDefault, `peer default at ${k(d.events)}`);
      results.ratio(rowcast, peerBatched, `peer batched at ${k(d.events)}`);
      if (d !== first) {
        results.ratio(rowcast, firstRowcast!, `rowcast at ${firstLabel}`);
        results.ratio(peerDefault, firstDefault!, `itself at ${firstLabel}`);
        results.ratio(peerBatched, firstBatched!, `itself at ${firstLabel}`);
      }
      const cursor = cursorBeside(
        results,
        rowcast,
        { name: `rowcast (cursor): ${what}`, value: spread(d.cursor.values), note: how(d.events, d.cursor) },
        d === first ? undefined : { cursor: firstCursor!, label: firstLabel },
      );
      if (d === first)
        [firstRowcast, firstCursor, firstDefault, firstBatched] = [rowcast, cursor, peerDefault, peerBatched];
    }
    let firstRss: Measurement | undefined;
    let firstCursorRss: Measurement | undefined;
    for (const d of drains) {
      const rss = results.add({
        scenario: 'scale',
        name: `rowcast peak RSS draining a ${k(d.events)} backlog (the drains above)`,
        unit: 'MB',
        value: spread(d.rss.values),
      });
      if (d !== first) results.ratio(rss, firstRss!, `at ${firstLabel}`);
      const cursorRss = cursorBeside(
        results,
        rss,
        { name: `rowcast (cursor) peak RSS draining a ${k(d.events)} backlog`, value: spread(d.cursorRss.values) },
        d === first ? undefined : { cursor: firstCursorRss!, label: firstLabel },
      );
      if (d === first) [firstRss, firstCursorRss] = [rss, cursorRss];
    }

    // ── Fan-out: the same number of deliveries, spread over 1, 10 and 100 subscriptions (all cursors, or none).
    let oneSub: { rows: Measurement; cursor: Measurement } | undefined;
    for (const subs of fanout.subscriptions) {
      const events = Math.max(1, Math.round(fanout.deliveries / subs));
      const series = { rows: new Series(), cursor: new Series() };
      for (let rep = 0; rep < profile.drain.reps; rep++) {
        for (const cursor of PATHS) {
          const tag = `scale fan-out ${subs} subscription(s)${pathTag(cursor)} ${rep + 1}/${profile.drain.reps}`;
          const r = await drainRowcast(ctx, 'fanout', events, tag, { subscriptions: subs, cursor });
          (cursor ? series.cursor : series.rows).push(r.rate, r.capped);
          ctx.log(`${tag}: ${Math.round(r.rate)} deliveries/s`);
        }
      }
      const what = `fan-out, ${k(events)} events → ${subs} subscription(s) (${k(events * subs)} deliveries)`;
      const rows = results.add({
        scenario: 'scale',
        name: `rowcast: ${what}`,
        unit: 'deliveries/s',
        value: spread(series.rows.values),
        note: cappedNote(series.rows),
      });
      if (oneSub) results.ratio(rows, oneSub.rows, '1 subscription');
      const cursor = cursorBeside(
        results,
        rows,
        { name: `rowcast (cursor): ${what}`, value: spread(series.cursor.values), note: cappedNote(series.cursor) },
        oneSub && { cursor: oneSub.cursor, label: '1 subscription' },
      );
      oneSub ??= { rows, cursor };
    }

    // ── Work sharing: 1, 2 and 4 processes on one database draining one backlog (sharing one subscription, or
    // one cursor); every row's id is recorded, so rows that never arrived and duplicates show.
    let oneProcess: { rows: Measurement; cursor: Measurement } | undefined;
    for (const count of processes.counts) {
      const paths = PATHS.map(() => ({ s: new Series(), rss: [] as number[] }));
      for (let rep = 0; rep < profile.drain.reps; rep++) {
        for (const cursor of PATHS) {
          const { s, rss } = paths[Number(cursor)]!;
          const tag = `scale ${count} process(es)${pathTag(cursor)} ${rep + 1}/${profile.drain.reps}`;
          const r = await drainRowcast(ctx, 'one', processes.events, tag, { processes: count, track: true, cursor });
          s.push(r.rate, r.capped);
          rss.push(...r.peakRssEach.map(mb));
          s.notes.push(...lossNotes(r, processes.events, rep));
          ctx.log(
            `${tag}: ${Math.round(r.rate)} deliveries/s, ${(r.distinct ?? 0).toLocaleString('en-US')} distinct rows of ${r.delivered.toLocaleString('en-US')} arrivals, peak RSS ${r.peakRssEach.map((b) => Math.round(mb(b))).join('/')} MB`,
          );
        }
      }
      const note = ({ s, rss }: (typeof paths)[number]) =>
        [
          ...(s.capped ? [cappedNote(s)!] : []),
          ...s.notes,
          `peak RSS per process ${Math.round(Math.min(...rss))}–${Math.round(Math.max(...rss))} MB`,
        ].join('; ');
      const what = `${count} process(es) on one PostgreSQL, ${k(processes.events)} backlog → 1 subscription`;
      const rows = results.add({
        scenario: 'scale',
        name: `rowcast: ${what}`,
        unit: 'deliveries/s',
        value: spread(paths[0]!.s.values),
        note: note(paths[0]!),
      });
      if (oneProcess) results.ratio(rows, oneProcess.rows, '1 process');
      const cursor = cursorBeside(
        results,
        rows,
        { name: `rowcast (cursor): ${what}`, value: spread(paths[1]!.s.values), note: note(paths[1]!) },
        oneProcess && { cursor: oneProcess.cursor, label: '1 process' },
      );
      oneProcess ??= { rows, cursor };
    }
  },
};

/**
 * What a tracked drain lost or repeated: rows that never arrived, and deliveries beyond one per row. Only a finished
 * drain compares: in one stopped at its limit, rows still arrive between the two reads.
 */
function lossNotes(r: RowcastDrain, events: number, rep: number): string[] {
  if (r.capped) return [];
  const distinct = r.distinct ?? 0;
  const notes: string[] = [];
  if (distinct < events)
    notes.push(`repetition ${rep + 1}: ${(events - distinct).toLocaleString('en-US')} rows never arrived`);
  if (r.delivered > distinct)
    notes.push(`repetition ${rep + 1}: ${(r.delivered - distinct).toLocaleString('en-US')} duplicate deliveries`);
  return notes;
}

/**
 * 5. Memory: peak resident set size (the kernel's VmHWM of the rowcast process) while it drains a backlog of a
 * million captured events to a webhook. The peak comes in the first seconds of a drain, so the drain is watched
 * for a bounded time (the backlog is still almost all there); it must not grow with the backlog, which the drain
 * scenario's 100k figure shows when both run. The same drain then runs with the subscription reading through a
 * cursor (`cursor: true`, issue 20), in a fresh database, its figure beside the rows path's. Flat is measured too:
 * RSS's growth over the watched drain after its first 10 s (a least-squares slope of the per-second samples), which
 * is near 0.05 MB/s when memory levels off and was 0.9–8 MB/s while results piled up (bench/HISTORY.md, 2026-12-06).
 */
import type { BenchContext, Scenario } from '../support/context.js';
import type { Measurement } from '../support/report.js';
import { slope, spread } from '../support/stats.js';
import { drainRowcast } from './drain.js';

export const memory: Scenario = {
  id: 'memory',
  title: 'memory: peak RSS draining a large backlog (rows and cursor)',
  async run(ctx: BenchContext) {
    const { events, drainMs } = ctx.profile.memory;
    const label = events >= 1_000_000 ? `${events / 1_000_000}M` : `${events / 1000}k`;
    let rows: Measurement | undefined;
    for (const cursor of [false, true]) {
      const tag = cursor ? ' (cursor)' : '';
      const r = await drainRowcast(ctx, 'one', events, `memory${tag}: ${label} backlog`, { watchMs: drainMs, cursor });
      const mb = r.peakRss / 2 ** 20;
      ctx.log(
        `memory${tag}: peak RSS ${Math.round(mb)} MB; ${r.delivered.toLocaleString('en-US')} delivered in ${drainMs / 1000} s (${Math.round(r.rate)}/s)`,
      );
      const m = ctx.results.add({
        scenario: 'memory',
        name: `rowcast${tag} peak RSS draining a ${label}-event backlog`,
        unit: 'MB',
        value: spread([mb]),
        note: `${r.delivered.toLocaleString('en-US')} delivered in the ${drainMs / 1000} s watched, ${Math.round(r.rate).toLocaleString('en-US')}/s; RSS at the end ${r.rssTimeline.at(-1)?.[1] ?? '?'} MB`,
        series: r.rssTimeline,
      });
      if (rows) ctx.results.ratio(m, rows, 'rows path');
      else {
        rows = m;
        const small = ctx.results.measurements.find((x) => x.scenario === 'drain' && x.unit === 'MB');
        if (small) ctx.results.ratio(m, small, `the drain scenario's peak`);
      }
      ctx.results.target(m, '≤ 150 MB (issue 20)', mb <= 150);
      const growth = slope(r.rssTimeline.filter(([s]) => s >= 10 && s <= drainMs / 1000));
      if (growth !== undefined) {
        const g = ctx.results.add({
          scenario: 'memory',
          name: `rowcast${tag} RSS growth while draining a ${label}-event backlog (after its first 10 s)`,
          unit: 'MB/s',
          value: spread([growth]),
        });
        ctx.results.target(g, '≤ 0.2 MB/s: flat (issue 20)', growth <= 0.2);
      }
    }
  },
};

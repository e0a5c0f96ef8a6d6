/** What a run measured, its table (Markdown, so it pastes into the README as is) and its JSON. */
import { cpus, release, totalmem } from 'node:os';
import type { Spread } from './stats.js';

export interface Measurement {
  /** Scenario id (capture, latency, drain, sustained, memory). */
  scenario: string;
  /** What was measured, e.g. "single-row INSERT, 8 writers: rowcast capture". */
  name: string;
  unit: string;
  /** null: not measured (see note). */
  value: Spread | null;
  note?: string;
  /** The same-run ratios of this median to baselines' medians. */
  ratios?: Array<{ to: string; value: number }>;
  /** A time series behind the figure (e.g. RSS per second), for the JSON only. */
  series?: Array<[number, number]>;
  /** The target and whether this run met it. */
  target?: { text: string; met: boolean };
}

export class Results {
  readonly measurements: Measurement[] = [];

  add(m: Measurement): Measurement {
    this.measurements.push(m);
    return m;
  }

  /** Records a measurement's ratio to a baseline measured in this run (both must have values); one may have several. */
  ratio(m: Measurement, baseline: Measurement, label = baseline.name): number | undefined {
    if (!m.value || !baseline.value || !baseline.value.median) return undefined;
    const value = m.value.median / baseline.value.median;
    (m.ratios ??= []).push({ to: label, value });
    return value;
  }

  target(m: Measurement, text: string, met: boolean | undefined): void {
    if (met !== undefined) m.target = { text, met };
  }
}

export function machine(): Record<string, string | number> {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryGb: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
  };
}

function num(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 'ms') return v < 10 ? v.toFixed(2) : v.toFixed(1);
  // A rate of memory growth: flat is a few hundredths.
  if (unit === 'MB/s') return v.toFixed(2);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(1);
}

/** The results as a Markdown table: median, min–max over the repetitions, ratio to the baseline, target. */
export function formatTable(results: Results): string {
  const lines = [
    '| scenario | measure | median | min–max | n | vs baseline | target |',
    '|---|---|---:|---:|---:|---|---|',
  ];
  for (const m of results.measurements) {
    const v = m.value;
    const median = v ? `${num(v.median, m.unit)} ${m.unit}` : (m.note ?? 'not available');
    const range = v ? `${num(v.min, m.unit)}–${num(v.max, m.unit)}` : '';
    const ratio = (m.ratios ?? []).map((r) => `${r.value.toFixed(2)}× ${r.to}`).join('; ');
    const target = m.target ? `${m.target.met ? '✅' : '❌'} ${m.target.text}` : '';
    const name = v && m.note ? `${m.name} (${m.note})` : m.name;
    lines.push(
      `| ${m.scenario} | ${name} | ${median} | ${range} | ${v ? v.values.length : ''} | ${ratio} | ${target} |`,
    );
  }
  return lines.join('\n');
}

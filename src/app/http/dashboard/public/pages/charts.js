// Rate and latency charts (uPlot) from GET /api/stats (the activity of every rowcast process on the database), refreshed every 10 s.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { api, html } from '../api.js';
import { ErrorBox, useLoad } from '../components.js';

// The API serves up to an hour of activity, in steps that are multiples of 10 s.
const WINDOWS = [
  { window: '5m', step: '10s', label: '5 minutes' },
  { window: '15m', step: '1m', label: '15 minutes' },
  { window: '1h', step: '2m', label: '1 hour' },
];

/** Axis colours from the stylesheet, so the charts follow light and dark mode. */
function axis() {
  const css = getComputedStyle(document.documentElement);
  const line = css.getPropertyValue('--line').trim();
  return { stroke: css.getPropertyValue('--muted').trim(), grid: { stroke: line }, ticks: { stroke: line } };
}

/** One uPlot chart; series: [{ label, key, stroke }]; rebuilt when the width changes, data updated in place. */
function Chart({ title, stats, series, unit }) {
  const box = useRef(null);
  const plot = useRef(null);
  const [width, setWidth] = useState(0);

  useEffect(() => {
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(box.current);
    return () => observer.disconnect();
  }, []);

  const data = [
    stats.series.map((p) => Date.parse(p.t) / 1000),
    ...series.map((s) => stats.series.map((p) => p[s.key] ?? null)),
  ];

  useEffect(() => {
    if (!width) return;
    plot.current = new uPlot(
      {
        width,
        height: 220,
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: s.stroke,
            width: 2,
            value: (_u, v) => (v === null ? '–' : `${Math.round(v * 10) / 10}${unit}`),
          })),
        ],
        axes: [axis(), { ...axis(), label: unit.trim() || undefined, size: 60 }],
        scales: { x: { time: true } },
        legend: { live: true },
      },
      data,
      box.current,
    );
    return () => plot.current?.destroy();
  }, [width]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [stats]);

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}: ${series.map((s) => s.label).join(', ')}`}></div>
  </figure>`;
}

export function Charts() {
  const [choice, setChoice] = useState(WINDOWS[1]);
  const { data, error } = useLoad(
    (signal) => api('stats', { query: { window: choice.window, step: choice.step }, signal }),
    [choice.window],
    10_000,
  );
  return html`<section aria-labelledby="charts-title">
    <h1 id="charts-title">Rates and latency</h1>
    <div class="filters">
      <label for="c-window">Window</label>
      <select
        id="c-window"
        value=${choice.window}
        onChange=${(e) => setChoice(WINDOWS.find((w) => w.window === e.currentTarget.value))}
      >
        ${WINDOWS.map((w) => html`<option value=${w.window}>${w.label}</option>`)}
      </select>
      ${data && html`<span class="hint">one point per ${typeof data.step === 'number' ? (data.step % 60 ? `${data.step} s` : `${data.step / 60} min`) : data.step}</span>`}
    </div>
    <${ErrorBox} error=${error} />
    ${
      data &&
      html`<${Chart}
          title="Events and deliveries per step"
          stats=${data}
          unit=""
          series=${[
            { label: 'events', key: 'events', stroke: '#2f6fb3' },
            { label: 'delivered', key: 'delivered', stroke: '#2e8540' },
            { label: 'failed', key: 'failed', stroke: '#c0392b' },
          ]}
        />
        <${Chart}
          title="Delivery latency (commit → acknowledged)"
          stats=${data}
          unit=" ms"
          series=${[
            { label: 'p50', key: 'latencyP50Ms', stroke: '#7a4fb3' },
            { label: 'p99', key: 'latencyP99Ms', stroke: '#d4860b' },
          ]}
        />`
    }
  </section>`;
}

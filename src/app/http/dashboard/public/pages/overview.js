// The chain as a picture: captured tables → functions → topics → subscriptions, each node with its rate,
// backlog and errors, refreshed every few seconds; below it the lag per stage and the subscriptions' actions.
import { useState } from 'preact/hooks';
import { age, api, count, html, link, post, rate, time } from '../api.js';
import { ActionButton, Badge, ErrorBox, useLoad } from '../components.js';

const REFRESH_MS = 3000;
const COL_WIDTH = 250;
const COL_GAP = 70;
const NODE_HEIGHT = 88;
const ROW_GAP = 14;
const TOP = 34;

/** A running backfill's share of the rows that matched at its start (rowcast backfill, POST …/backfill). */
const backfillShare = (b) =>
  b.rowsTotal ? `${Math.min(100, Math.floor((b.rowsSent / b.rowsTotal) * 100))}%` : count(b.rowsSent);

const clip = (text, max = 28) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The graph's nodes per column, with ids for the edges. */
function layout(o) {
  const columns = [
    {
      title: 'Captured tables',
      nodes: o.captures.map((c) => ({
        id: `capture:${c.name}`,
        title: c.table,
        subtitle: `${c.name} · ${(c.operations ?? []).join(' ')}`,
        stats: [
          `${rate(c.eventsPerMinute)}`,
          ...(c.backfill?.state === 'running' ? [`backfill ${backfillShare(c.backfill)}`] : []),
        ],
        problems: c.backfill?.state === 'failed' ? [`backfill failed at ${count(c.backfill.rowsSent)}`] : [],
        label: `Capture ${c.name} on table ${c.table}: ${rate(c.eventsPerMinute)} events${c.backfill ? `; backfill ${c.backfill.state}, ${c.backfill.rowsSent} of ${c.backfill.rowsTotal ?? '?'} rows` : ''}`,
        href: link('tail'),
        warn: c.backfill?.state === 'failed',
      })),
    },
    {
      title: 'Functions',
      nodes: o.functions.map((f) => ({
        id: `function:${f.name}`,
        title: f.name,
        subtitle: f.state,
        stats: [rate(f.invocationsPerMinute), `backlog ${count(f.pending + f.running)}`],
        problems: [`errors ${rate(f.errorsPerMinute)}`, `failed ${count(f.dead)}`],
        label: `Function ${f.name}, ${f.state}: ${rate(f.invocationsPerMinute)} invocations, backlog ${f.pending + f.running}, ${rate(f.errorsPerMinute)} errors, ${f.dead} failed`,
        warn: f.errorsPerMinute > 0 || f.dead > 0,
        muted: f.state !== 'active',
      })),
    },
    {
      title: 'Topics',
      nodes: o.topics.map((t) => ({
        id: `topic:${t.name}`,
        title: t.name,
        // Made through the SNS API (docs/sns.md) rather than declared in the config.
        subtitle: `${t.fifo ? 'FIFO' : 'standard'}${t.owner === 'api' ? ' · SNS API' : ''}`,
        stats: [rate(t.messagesPerMinute)],
        label: `Topic ${t.name}: ${rate(t.messagesPerMinute)} messages`,
        href: link('deliveries', { topic: t.name }),
      })),
    },
    {
      title: 'Subscriptions',
      nodes: o.subscriptions.map((s) => ({
        id: `subscription:${s.name}`,
        title: s.name,
        // SNS's handshake: a subscription waiting for its endpoint's confirmation receives nothing.
        subtitle: `${s.protocol}${s.owner === 'api' ? ' · SNS API' : ''}${s.state !== 'active' ? ` · ${s.state}` : ''}${confirmationNote(s)}`,
        stats: [rate(s.deliveredPerMinute), `backlog ${count(s.pending + s.inFlight)}`],
        problems: [`errors ${rate(s.errorsPerMinute)}`, `dead ${count(s.dead)}`],
        label: `Subscription ${s.name} (${s.protocol}, ${s.state}${confirmationNote(s).replace(' ·', ',')}): ${rate(s.deliveredPerMinute)} delivered, backlog ${s.pending + s.inFlight}, ${rate(s.errorsPerMinute)} errors, ${s.dead} dead`,
        href: s.dead ? link('dead-letters', { subscription: s.name }) : link('deliveries', { subscription: s.name }),
        warn: s.errorsPerMinute > 0 || s.dead > 0,
        muted: s.state !== 'active' || s.confirmation !== 'confirmed',
      })),
    },
  ];
  const at = new Map();
  columns.forEach((col, ci) =>
    col.nodes.forEach((n, ri) => {
      n.col = ci;
      n.x = ci * (COL_WIDTH + COL_GAP);
      n.y = TOP + ri * (NODE_HEIGHT + ROW_GAP);
      at.set(n.id, n);
    }),
  );
  const edges = [];
  for (const c of o.captures) edges.push([`capture:${c.name}`, `${c.target.kind}:${c.target.name}`]);
  for (const s of o.subscriptions) edges.push([`topic:${s.topic}`, `subscription:${s.name}`]);
  const rows = Math.max(1, ...columns.map((c) => c.nodes.length));
  // A capture straight to a topic passes the functions column below its boxes, not through them.
  const lane = columns[1].nodes.length ? TOP + columns[1].nodes.length * (NODE_HEIGHT + ROW_GAP) + 4 : null;
  return {
    columns,
    lane,
    edges: edges.filter(([a, b]) => at.has(a) && at.has(b)).map(([a, b]) => [at.get(a), at.get(b)]),
    width: columns.length * COL_WIDTH + (columns.length - 1) * COL_GAP,
    height: Math.max(TOP + rows * (NODE_HEIGHT + ROW_GAP), lane !== null ? lane + 16 : 0),
  };
}

function Node({ n }) {
  const body = html` <title>${n.label}</title>
    <rect width=${COL_WIDTH} height=${NODE_HEIGHT} rx="6" />
    <text x="10" y="20" class="node-title">${clip(n.title)}</text>
    <text x="10" y="38" class="node-sub">${clip(n.subtitle, 34)}</text>
    <text x="10" y="58" class="node-stats">${n.stats.join(' · ')}</text>
    ${n.problems && html`<text x="10" y="76" class="node-problems">${n.problems.join(' · ')}</text>`}`;
  const cls = `node${n.warn ? ' warn' : ''}${n.muted ? ' muted' : ''}`;
  return n.href
    ? html`<a href=${n.href} class=${cls} transform=${`translate(${n.x},${n.y})`} aria-label=${n.label}>${body}</a>`
    : html`<g class=${cls} transform=${`translate(${n.x},${n.y})`} role="img" aria-label=${n.label}>${body}</g>`;
}

function Chain({ overview }) {
  const g = layout(overview);
  const edge = ([a, b]) => {
    const x1 = a.x + COL_WIDTH;
    const y1 = a.y + NODE_HEIGHT / 2;
    const x2 = b.x - 4;
    const y2 = b.y + NODE_HEIGHT / 2;
    const bend = COL_GAP / 2;
    const d =
      b.col - a.col > 1 && g.lane !== null
        ? `M${x1},${y1} C${x1 + bend},${y1} ${x1 + COL_GAP - bend},${g.lane} ${x1 + COL_GAP},${g.lane} H${x2 - COL_GAP} C${x2 - COL_GAP + bend},${g.lane} ${x2 - bend},${y2} ${x2},${y2}`
        : `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
    return html`<path class="edge" d=${d} marker-end="url(#arrow)" />`;
  };
  return html`<figure class="chain">
    <svg
      viewBox=${`-2 0 ${g.width + 4} ${g.height}`}
      width=${g.width + 4}
      role="group"
      aria-label="The chain: captured tables, functions, topics and subscriptions"
    >
      <defs>
        <marker
          id="arrow"
          viewBox="0 0 10 10"
          refX="9"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto-start-reverse"
        >
          <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
        </marker>
      </defs>
      ${g.columns.map((col, i) => html`<text class="col-title" x=${i * (COL_WIDTH + COL_GAP)} y="16">${col.title}</text>`)}
      ${g.edges.map(edge)}
      ${g.columns.map((col, i) =>
        col.nodes.length
          ? col.nodes.map((n) => html`<${Node} n=${n} />`)
          : html`<text class="node-sub" x=${i * (COL_WIDTH + COL_GAP)} y=${TOP + 20}>none</text>`,
      )}
    </svg>
    <figcaption>
      Rates per minute are those of every rowcast process on this database (counted in 10-second buckets, written every
      few seconds); backlogs (pending + in flight) and dead counts come from the database. Click a topic or subscription
      for its deliveries.
    </figcaption>
  </figure>`;
}

function Lag({ lag }) {
  const stages = ['routing', 'invocations', 'deliveries'];
  return html`<table class="compact">
    <caption>
      Lag per stage
    </caption>
    <thead>
      <tr>
        <th scope="col">stage</th>
        <th scope="col">pending</th>
        <th scope="col">oldest</th>
      </tr>
    </thead>
    <tbody>
      ${stages.map(
        (s) =>
          html`<tr>
            <th scope="row">${s}</th>
            <td>${count(lag?.[s]?.pending)}</td>
            <td>${age(lag?.[s]?.oldestAgeSeconds)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function Subscriptions({ subscriptions, reload }) {
  return html`<table>
    <caption>
      Subscriptions
    </caption>
    <thead>
      <tr>
        <th scope="col">name</th>
        <th scope="col">topic</th>
        <th scope="col">endpoint</th>
        <th scope="col">state</th>
        <th scope="col">pending</th>
        <th scope="col">dead</th>
        <th scope="col">actions</th>
      </tr>
    </thead>
    <tbody>
      ${subscriptions.map(
        (s) =>
          html`<tr>
            <th scope="row"><a href=${link('deliveries', { subscription: s.name })}>${s.name}</a></th>
            <td>${s.topic}</td>
            <td class="mono">${s.protocol} ${s.endpoint}</td>
            <td>
              <${Badge}
                state=${s.state}
              />${s.stateReason && html` <small>${s.stateReason}</small>`}${s.confirmation !== 'confirmed' && html` <small>${confirmationNote(s).slice(3)}</small>`}${s.state === 'active' && s.failingSince && html` <small class="last-error">failing since ${time(s.failingSince)}</small>`}
            </td>
            <td>${count(s.pending + s.inFlight)}</td>
            <td>
              ${s.dead ? html`<a href=${link('dead-letters', { subscription: s.name })}>${count(s.dead)}</a>` : '0'}
            </td>
            <td>
              ${
                s.state === 'active'
                  ? html`<${ActionButton}
                      label="Pause"
                      ariaLabel=${`Pause ${s.name}`}
                      action=${() => post(`subscriptions/${encodeURIComponent(s.name)}/pause`)}
                      describe=${() => 'Paused.'}
                      onDone=${reload}
                    />`
                  : html`<${ActionButton}
                      label="Resume"
                      ariaLabel=${`Resume ${s.name}`}
                      action=${() => post(`subscriptions/${encodeURIComponent(s.name)}/resume`)}
                      describe=${() => 'Resumed.'}
                      onDone=${reload}
                    />`
              }
              ${
                s.confirmation === 'confirmed' &&
                html`<${ActionButton}
                  label="Send test"
                  ariaLabel=${`Send a test message to ${s.name}`}
                  action=${() => post(`subscriptions/${encodeURIComponent(s.name)}/test`, { subject: 'rowcast dashboard test' })}
                  describe=${(r) => `Test message ${r?.messageId ?? ''} queued.`}
                />`
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** Each capture's last backfill (rows sent of those that matched at its start, its state) and a button to start one. */
function Captures({ captures, reload }) {
  return html`<table>
    <caption>
      Captures
    </caption>
    <thead>
      <tr>
        <th scope="col">name</th>
        <th scope="col">table</th>
        <th scope="col">backfill</th>
        <th scope="col">rows sent</th>
        <th scope="col">actions</th>
      </tr>
    </thead>
    <tbody>
      ${captures.map((c) => {
        const b = c.backfill;
        const running = b?.state === 'running';
        // A stopped one (failed, or its process killed) resumes where it stopped; a finished one starts over.
        const label = b && b.state !== 'done' ? 'Resume backfill' : 'Backfill';
        return html`<tr>
          <th scope="row">${c.name}</th>
          <td class="mono">${c.table}</td>
          <td>
            ${b ? html`<${Badge} state=${b.state} />${b.error && html` <small class="last-error">${b.error}</small>`}` : html`<small>none</small>`}
          </td>
          <td>
            ${
              b
                ? html`<progress
                      max=${b.rowsTotal || 1}
                      value=${b.rowsTotal ? Math.min(b.rowsSent, b.rowsTotal) : b.state === 'done' ? 1 : 0}
                      aria-label=${`Backfill of ${c.name}`}
                    ></progress>
                    <span class="backfill-rows"
                      >${count(b.rowsSent)} / ${b.rowsTotal === null ? '?' : count(b.rowsTotal)}</span
                    >`
                : ''
            }
          </td>
          <td>${!running && html`<${BackfillAction} capture=${c.name} label=${label} reload=${reload} />`}</td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

/**
 * The backfill button of a capture, and what `rowcast backfill <capture> --where SQL --batch N` takes: a condition on
 * the table's columns and rows per batch (both optional; the server checks them as it does the CLI's).
 */
function BackfillAction({ capture, label, reload }) {
  const [where, setWhere] = useState('');
  const [batch, setBatch] = useState('');
  const id = (what) => `backfill-${what}-${capture}`;
  const body = () => ({
    ...(where.trim() ? { where: where.trim() } : {}),
    ...(batch.trim() ? { batch: /^\d+$/.test(batch.trim()) ? Number(batch.trim()) : batch.trim() } : {}),
  });
  return html`<div class="backfill-action">
    <${ActionButton}
      label=${label}
      ariaLabel=${`${label} of ${capture}`}
      action=${() => post(`captures/${encodeURIComponent(capture)}/backfill`, body())}
      describe=${(r) => `Started: ${count(r?.rowsTotal ?? 0)} rows to send.`}
      onDone=${reload}
    />
    <details>
      <summary>options</summary>
      <label for=${id('where')}>Only rows where (SQL)</label>
      <input
        id=${id('where')}
        class="mono"
        placeholder="created_at > now() - interval '30 days'"
        value=${where}
        onInput=${(e) => setWhere(e.currentTarget.value)}
      />
      <label for=${id('batch')}>Rows per batch</label>
      <input
        id=${id('batch')}
        inputmode="numeric"
        placeholder="1000"
        value=${batch}
        onInput=${(e) => setBatch(e.currentTarget.value)}
      />
    </details>
  </div>`;
}

function Functions({ functions, reload }) {
  return html`<table>
    <caption>
      Functions
    </caption>
    <thead>
      <tr>
        <th scope="col">name</th>
        <th scope="col">state</th>
        <th scope="col">pending</th>
        <th scope="col">running</th>
        <th scope="col">failed</th>
        <th scope="col">actions</th>
      </tr>
    </thead>
    <tbody>
      ${functions.map(
        (f) =>
          html`<tr>
            <th scope="row">${f.name}</th>
            <td><${Badge} state=${f.state} /></td>
            <td>${count(f.pending)}</td>
            <td>${count(f.running)}</td>
            <td>${count(f.dead)}</td>
            <td>
              ${
                f.state === 'active'
                  ? html`<${ActionButton}
                      label="Pause"
                      ariaLabel=${`Pause function ${f.name}`}
                      action=${() => post(`functions/${encodeURIComponent(f.name)}/pause`)}
                      describe=${() => 'Paused.'}
                      onDone=${reload}
                    />`
                  : html`<${ActionButton}
                      label="Resume"
                      ariaLabel=${`Resume function ${f.name}`}
                      action=${() => post(`functions/${encodeURIComponent(f.name)}/resume`)}
                      describe=${() => 'Resumed.'}
                      onDone=${reload}
                    />`
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function Overview() {
  const { data, error, reload } = useLoad((signal) => api('overview', { signal }), [], REFRESH_MS);
  return html`<section aria-labelledby="overview-title">
    <h1 id="overview-title">Overview</h1>
    <${ErrorBox} error=${error} />
    ${
      data
        ? html`<p class="hint" aria-live="off">
              Updated ${time(data.generatedAt)}; refreshes every ${REFRESH_MS / 1000} s.
            </p>
            <${Chain} overview=${data} />
            <div class="row">
              <${Lag} lag=${data.lag} />
              ${data.subscriptions.length > 0 && html`<${Subscriptions} subscriptions=${data.subscriptions} reload=${reload} />`}
            </div>
            ${data.functions.length > 0 && html`<${Functions} functions=${data.functions} reload=${reload} />`}
            ${data.captures.length > 0 && html`<${Captures} captures=${data.captures} reload=${reload} />`}`
        : !error && html`<p class="loading" role="status">Loading…</p>`
    }
  </section>`;
}

/** ' · pending confirmation' or ' · unsubscribed' (SNS's handshake, docs/sns.md); nothing when confirmed. */
function confirmationNote(s) {
  if (s.confirmation === 'pending') return ' · pending confirmation';
  if (s.confirmation === 'unsubscribed') return ' · unsubscribed';
  return '';
}

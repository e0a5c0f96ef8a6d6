// The live tail: events as they are captured and deliveries as they change state, from GET /api/tail (SSE).
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, link, streamEvents, time } from '../api.js';
import { Badge } from '../components.js';

const KEEP = 300;

function Line({ item }) {
  const { type, data } = item;
  if (type === 'event') {
    return html`<li class="tail-line tail-event">
      <time datetime=${data.at}>${time(data.at)}</time>
      <span class="kind">event</span>
      <span class="mono">${data.op}</span>
      <span>${data.table}</span>
      <span class="muted">capture ${data.capture}${data.topic ? ` → ${data.topic}` : ''} · #${data.id}</span>
    </li>`;
  }
  if (type === 'subscription') {
    // A subscription disabled by its disableAfter (or by its endpoint's 410): its deliveries wait until resumed.
    return html`<li class="tail-line tail-subscription">
      <time datetime=${data.at}>${time(data.at)}</time>
      <span class="kind">subscription</span>
      <${Badge} state=${data.state} />
      <a href=${link('deliveries', { subscription: data.subscription })}>${data.subscription}</a>
      <span class="last-error">${data.reason}</span>
    </li>`;
  }
  return html`<li class="tail-line tail-delivery">
    <time datetime=${data.at}>${time(data.at)}</time>
    <span class="kind">delivery</span>
    <${Badge} state=${data.outcome ?? data.state} />
    <a href=${link(`deliveries/${encodeURIComponent(data.id)}`)}>${data.subscription}</a>
    <span class="muted"
      >${data.attempt ? `attempt ${data.attempt} · ` : ''}${data.status ? `status ${data.status} · ` : ''}message
      ${data.messageId}</span
    >
  </li>`;
}

export function Tail() {
  const [items, setItems] = useState([]);
  const [status, setStatus] = useState('connecting');
  const [paused, setPaused] = useState(false);
  const [show, setShow] = useState({ event: true, delivery: true });
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const seq = useRef(0);

  useEffect(
    () =>
      streamEvents(
        'tail',
        (type, data) => {
          if ((type !== 'event' && type !== 'delivery' && type !== 'subscription') || pausedRef.current) return;
          const item = { key: ++seq.current, type, data, at: Date.parse(data.at) || Date.now() };
          // Events are polled and deliveries pushed, so they can arrive out of order: keep the list by time.
          setItems((list) => [item, ...list].sort((a, b) => b.at - a.at || b.key - a.key).slice(0, KEEP));
        },
        setStatus,
      ),
    [],
  );

  const visible = items.filter((i) => show[i.type] ?? true);
  return html`<section aria-labelledby="tail-title">
    <h1 id="tail-title">Live tail</h1>
    <div class="toolbar" role="group" aria-label="Tail controls">
      <span class=${`conn conn-${status.split(':')[0]}`} role="status">${status === 'open' ? 'live' : status}</span>
      <label
        ><input
          type="checkbox"
          checked=${show.event}
          onChange=${(e) => setShow({ ...show, event: e.currentTarget.checked })}
        />
        events</label
      >
      <label
        ><input
          type="checkbox"
          checked=${show.delivery}
          onChange=${(e) => setShow({ ...show, delivery: e.currentTarget.checked })}
        />
        deliveries</label
      >
      <button type="button" aria-pressed=${paused} onClick=${() => setPaused(!paused)}>
        ${paused ? 'Resume' : 'Pause'}
      </button>
      <button type="button" onClick=${() => setItems([])}>Clear</button>
    </div>
    <p class="hint">Newest first; the last ${KEEP} lines are kept while this page is open.</p>
    <ol class="tail" role="log" aria-label="Events and deliveries">
      ${visible.length ? visible.map((item) => html`<${Line} key=${item.key} item=${item} />`) : html`<li class="muted">Waiting for changes…</li>`}
    </ol>
  </section>`;
}

// Deliveries: a filtered, paginated list, and one delivery's detail with its message and attempt history.
import { useEffect, useState } from 'preact/hooks';
import { api, count, html, link, post, pretty, time } from '../api.js';
import { ActionButton, Badge, ErrorBox, NameSelect, useLoad } from '../components.js';
import { AttemptLog } from './attempt-log.js';
import { ResendButton, useFollowed } from './resend.js';
import { RowKeyCell, SEARCH_KEYS, SearchFields } from './delivery-search.js';

const STATES = ['pending', 'in_flight', 'done', 'dead'];

/** Subscription and topic names for the filters (one overview call). */
export function useNames(intervalMs = 0) {
  const { data, reload } = useLoad((signal) => api('overview', { signal }), [], intervalMs);
  return {
    subscriptions: data?.subscriptions.map((s) => s.name) ?? [],
    topics: data?.topics.map((t) => t.name) ?? [],
    captures: data?.captures.map((c) => c.name) ?? [],
    overview: data,
    reload,
  };
}

/**
 * A paginated list: the first page from load(cursor), more pages appended with "Load more".
 * Returns { items, error, more, loadMore, reload }.
 */
export function usePages(load, deps, intervalMs = 0) {
  const [extra, setExtra] = useState({ items: [], cursor: undefined, error: undefined });
  useEffect(() => setExtra({ items: [], cursor: undefined, error: undefined }), deps);
  const first = useLoad((signal) => load(undefined, signal), deps, intervalMs);
  const nextCursor = extra.cursor === undefined ? first.data?.nextCursor : extra.cursor;
  const loadMore = async () => {
    try {
      const page = await load(nextCursor);
      setExtra((e) => ({ items: [...e.items, ...page.items], cursor: page.nextCursor, error: undefined }));
    } catch (error) {
      setExtra((e) => ({ ...e, error }));
    }
  };
  // The first page refreshes while later ones stay: an item that moved between them is shown once.
  const seen = new Set();
  const items = [...(first.data?.items ?? []), ...extra.items].filter((i) => !seen.has(i.id) && seen.add(i.id));
  return {
    items,
    error: first.error ?? extra.error,
    loading: first.loading,
    more: Boolean(nextCursor),
    loadMore,
    reload: first.reload,
  };
}

/**
 * Whether the delivery's latest outcome was a failure: its last error is kept after a later success (as history),
 * so it is shown only while no 2xx came after it.
 */
const lastFailed = (d) => d.state !== 'done' && Boolean(d.lastError) && !(d.lastStatus >= 200 && d.lastStatus < 300);

function LastOutcome({ d }) {
  if (lastFailed(d))
    return html`<td class="last-error">
      ${d.lastStatus ? html`<span class="mono">${d.lastStatus}</span> ` : ''}${d.lastError}
    </td>`;
  return html`<td class="mono">${d.lastStatus ?? ''}</td>`;
}

export function DeliveryTable({ items, caption, actions, rowKeys = false }) {
  const columns = 7 + (actions ? 1 : 0) + (rowKeys ? 1 : 0);
  return html`<table>
    <caption>
      ${caption}
    </caption>
    <thead>
      <tr>
        <th scope="col">delivery</th>
        <th scope="col">subscription</th>
        <th scope="col">topic</th>
        ${rowKeys && html`<th scope="col">row key</th>`}
        <th scope="col">state</th>
        <th scope="col">attempts</th>
        <th scope="col">last status / error</th>
        <th scope="col">updated</th>
        ${actions && html`<th scope="col">actions</th>`}
      </tr>
    </thead>
    <tbody>
      ${
        items.length === 0 &&
        html`<tr>
          <td colspan=${columns} class="muted">None.</td>
        </tr>`
      }
      ${items.map(
        (d) =>
          html`<tr key=${d.id}>
            <th scope="row"><a href=${link(`deliveries/${encodeURIComponent(d.id)}`)} class="mono">${d.id}</a></th>
            <td>${d.subscription}</td>
            <td>${d.topic}</td>
            ${rowKeys && html`<${RowKeyCell} d=${d} />`}
            <td><${Badge} state=${d.state} /></td>
            <td>${count(d.attempts)}</td>
            <${LastOutcome} d=${d} />
            <td>${time(d.updatedAt)}</td>
            ${actions && html`<td>${actions(d)}</td>`}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function SubscriptionBar({ name, overview, reload }) {
  const s = overview?.subscriptions.find((x) => x.name === name);
  if (!s) return null;
  const path = `subscriptions/${encodeURIComponent(name)}`;
  return html`<div class="toolbar" role="group" aria-label=${`Subscription ${name}`}>
    <strong>${name}</strong> <${Badge} state=${s.state} /> <span class="mono">${s.protocol} ${s.endpoint}</span>
    ${s.stateReason && html`<small>${s.stateReason}</small>`}
    ${
      s.state === 'active'
        ? html`<${ActionButton}
            label="Pause"
            action=${() => post(`${path}/pause`)}
            describe=${() => 'Paused.'}
            onDone=${reload}
          />`
        : html`<${ActionButton}
            label="Resume"
            action=${() => post(`${path}/resume`)}
            describe=${() => 'Resumed.'}
            onDone=${reload}
          />`
    }
    <${ActionButton}
      label="Send test message"
      action=${() => post(`${path}/test`, { subject: 'rowcast dashboard test' })}
      describe=${(r) => `Queued ${r?.messageId ?? ''}.`}
      onDone=${reload}
    />
  </div>`;
}

export function Deliveries({ query }) {
  const [filter, setFilter] = useState({
    subscription: query.get('subscription') ?? '',
    topic: query.get('topic') ?? '',
    status: query.get('status') ?? '',
    ...Object.fromEntries(SEARCH_KEYS.map((k) => [k, query.get(k) ?? ''])),
  });
  const names = useNames();
  const pages = usePages(
    (cursor, signal) => api('deliveries', { query: { ...filter, cursor, limit: 50 }, signal }),
    [filter.subscription, filter.topic, filter.status, ...SEARCH_KEYS.map((k) => filter[k])],
    5000,
  );
  const set = (key) => (value) => {
    const next = { ...filter, [key]: value };
    setFilter(next);
    history.replaceState(null, '', link('deliveries', next));
  };
  return html`<section aria-labelledby="deliveries-title">
    <h1 id="deliveries-title">Deliveries</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="Filter deliveries">
      <${NameSelect}
        id="f-subscription"
        label="Subscription"
        names=${names.subscriptions}
        value=${filter.subscription}
        onChange=${set('subscription')}
      />
      <${NameSelect} id="f-topic" label="Topic" names=${names.topics} value=${filter.topic} onChange=${set('topic')} />
      <${NameSelect} id="f-status" label="State" names=${STATES} value=${filter.status} onChange=${set('status')} />
      <${SearchFields} filter=${filter} captures=${names.captures} onChange=${(key, value) => set(key)(value)} />
    </form>
    ${filter.subscription && html`<${SubscriptionBar} name=${filter.subscription} overview=${names.overview} reload=${pages.reload} />`}
    <${ErrorBox} error=${pages.error} />
    <${DeliveryTable} items=${pages.items} caption="Newest first; refreshes every 5 s." rowKeys=${true} />
    ${pages.more && html`<button type="button" onClick=${pages.loadMore}>Load more</button>`}
  </section>`;
}

export function DeliveryDetail({ params }) {
  const id = params[0];
  const {
    data: d,
    error,
    reload,
  } = useLoad((signal) => api(`deliveries/${encodeURIComponent(id)}`, { signal }), [id], 3000);
  // Kept outside the button, which goes away once the delivery is no longer dead.
  const [notice, setNotice] = useState('');
  // After a redrive (or a resend) the notice follows the delivery to its outcome.
  const [redriven, setRedriven] = useState(false);
  const resend = useFollowed(d, 'Resent');
  const followed =
    resend.notice ||
    (!redriven || !d
      ? notice
      : d.state === 'done'
        ? 'Redriven: 1. Delivered.'
        : d.state === 'dead'
          ? 'Redriven: 1. It failed again and is dead; see its attempts.'
          : 'Redriven: 1. The delivery is pending again; this page follows it.');
  return html`<section aria-labelledby="delivery-title">
    <p><a href=${d ? link('deliveries', { subscription: d.subscription }) : link('deliveries')}>← Deliveries</a></p>
    <h1 id="delivery-title">Delivery <span class="mono">${id}</span></h1>
    <p class="notice" role="status">${followed}</p>
    <${ErrorBox} error=${error} />
    ${
      d &&
      html`<dl class="facts">
          <dt>State</dt>
          <dd><${Badge} state=${d.state} /></dd>
          <dt>Subscription</dt>
          <dd><a href=${link('deliveries', { subscription: d.subscription })}>${d.subscription}</a></dd>
          <dt>Topic</dt>
          <dd>${d.topic}</dd>
          <dt>Attempts</dt>
          <dd>${count(d.attempts)}</dd>
          <dt>Created</dt>
          <dd>${time(d.createdAt)}</dd>
          <dt>Updated</dt>
          <dd>${time(d.updatedAt)}</dd>
          <dt>Delivered</dt>
          <dd>${time(d.deliveredAt)}</dd>
          <dt>Message id</dt>
          <dd class="mono">${d.messageId}</dd>
          ${
            d.cursor &&
            html`<dt>Cursor</dt>
              <dd>
                read through a cursor, which has passed seq <span class="mono">${d.cursor.passed}</span>; it records no
                attempts
              </dd>`
          }
        </dl>
        ${
          lastFailed(d) &&
          html`<div class="last-error-box" role="note" aria-label="Last error">
            <strong>Last error</strong>${d.lastStatus ? ` (status ${d.lastStatus})` : ''}: ${d.lastError}
          </div>`
        }
        ${
          d.state === 'dead' &&
          html`<p>
            <${ActionButton}
              label="Redrive this delivery"
              kind="primary"
              action=${() => post(`deliveries/${encodeURIComponent(id)}/redrive`)}
              describe=${(r) => `Redriven: ${r?.redriven ?? 0}.`}
              onDone=${(r) => {
                setRedriven(Boolean(r?.redriven));
                setNotice(r?.redriven ? '' : 'Nothing was redriven: the delivery is no longer dead.');
                resend.reset();
                reload();
              }}
            />
          </p>`
        }
        ${
          (d.state === 'done' || d.state === 'dead') &&
          html`<p>
            <${ResendButton}
              id=${id}
              onResent=${() => {
                setRedriven(false);
                resend.start();
                reload();
              }}
            />
          </p>`
        }
        <${AttemptLog} attempts=${d.attemptLog} />
        ${
          d.message &&
          html`<h2>Message</h2>
            <dl class="facts">
              <dt>Subject</dt>
              <dd>${d.message.subject ?? '–'}</dd>
              <dt>Event</dt>
              <dd class="mono">${d.message.eventId ?? '–'}</dd>
              <dt>Trace</dt>
              <dd class="mono">${d.message.trace ?? '–'}</dd>
            </dl>
            <h3>Attributes</h3>
            <pre class="code">${pretty(d.message.attributes ?? {})}</pre>
            <h3>Body</h3>
            <pre class="code">${pretty(d.message.body)}</pre>`
        }`
    }
  </section>`;
}

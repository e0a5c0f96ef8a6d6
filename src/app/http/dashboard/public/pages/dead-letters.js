// Dead letters: deliveries that used up their attempts, with redrive per delivery and per subscription, and a
// replay of a capture's events from a point in time to one subscription.
import { useState } from 'preact/hooks';
import { api, count, html, link, post } from '../api.js';
import { ActionButton, ErrorBox, NameSelect } from '../components.js';
import { DeliveryTable, useNames, usePages } from './deliveries.js';

/** A datetime-local value (local time, no zone) as ISO 8601, or undefined when empty. */
const isoFromLocal = (value) => (value ? new Date(value).toISOString() : undefined);

function Replay({ captures, subscriptions }) {
  const [form, setForm] = useState({ capture: '', subscription: '', since: '', until: '' });
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const ready = form.capture && form.subscription && form.since;
  return html`<form class="panel" onSubmit=${(e) => e.preventDefault()} aria-labelledby="replay-title">
    <h2 id="replay-title">Replay a capture's events</h2>
    <p class="hint">
      Sends the events a capture recorded since a point in time (within the retention window) to one subscription again,
      with the same message ids.
    </p>
    <div class="filters">
      <${NameSelect}
        id="r-capture"
        label="Capture"
        names=${captures}
        value=${form.capture}
        onChange=${set('capture')}
        required
      />
      <${NameSelect}
        id="r-subscription"
        label="To subscription"
        names=${subscriptions}
        value=${form.subscription}
        onChange=${set('subscription')}
        required
      />
      <label for="r-since">Since</label>
      <input
        id="r-since"
        type="datetime-local"
        step="1"
        required
        value=${form.since}
        onInput=${(e) => set('since')(e.currentTarget.value)}
      />
      <label for="r-until">Until (optional)</label>
      <input
        id="r-until"
        type="datetime-local"
        step="1"
        value=${form.until}
        onInput=${(e) => set('until')(e.currentTarget.value)}
      />
    </div>
    ${
      ready
        ? html`<${ActionButton}
            label="Replay"
            kind="primary"
            confirm=${`Send the events of ${form.capture} since ${form.since} to ${form.subscription} again?`}
            action=${() => post(`captures/${encodeURIComponent(form.capture)}/replay`, { subscription: form.subscription, since: isoFromLocal(form.since), until: isoFromLocal(form.until) })}
            describe=${(r) => `Replayed ${count(r?.replayed ?? 0)} events.`}
          />`
        : html`<p class="hint">Choose a capture, a subscription and a start time to replay.</p>`
    }
  </form>`;
}

export function DeadLetters({ query }) {
  const [subscription, setSubscription] = useState(query.get('subscription') ?? '');
  const names = useNames(5000);
  const [notice, setNotice] = useState('');
  const pages = usePages(
    (cursor, signal) => api('dead-letters', { query: { subscription, cursor, limit: 50 }, signal }),
    [subscription],
    5000,
  );
  const choose = (value) => {
    setSubscription(value);
    history.replaceState(null, '', link('dead-letters', { subscription: value }));
  };
  const withDead = (names.overview?.subscriptions ?? []).filter(
    (s) => s.dead > 0 && (!subscription || s.name === subscription),
  );
  const done = (text) => {
    setNotice(text);
    pages.reload();
    names.reload();
  };
  return html`<section aria-labelledby="dead-title">
    <h1 id="dead-title">Dead letters</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="Filter dead letters">
      <${NameSelect}
        id="d-subscription"
        label="Subscription"
        names=${names.subscriptions}
        value=${subscription}
        onChange=${choose}
      />
    </form>
    ${
      withDead.length > 0 &&
      html`<ul class="redrive-all" aria-label="Redrive per subscription">
        ${withDead.map(
          (s) =>
            html`<li>
              <${ActionButton}
                label=${`Redrive all ${count(s.dead)} dead of ${s.name}`}
                confirm=${`Deliver the ${s.dead} dead letters of ${s.name} again?`}
                action=${() => post(`subscriptions/${encodeURIComponent(s.name)}/redrive`, {})}
                describe=${(r) => `Redriven: ${count(r?.redriven ?? 0)}.`}
                onDone=${(r) => done(`Redrove ${count(r?.redriven ?? 0)} dead letters of ${s.name}.`)}
              />
            </li>`,
        )}
      </ul>`
    }
    <p class="notice" role="status">${notice}</p>
    <${ErrorBox} error=${pages.error} />
    <${DeliveryTable}
      items=${pages.items}
      caption="Dead deliveries, newest first; refreshes every 5 s."
      actions=${(d) =>
        html`<${ActionButton}
          label="Redrive"
          ariaLabel=${`Redrive delivery ${d.id}`}
          action=${() => post(`deliveries/${encodeURIComponent(d.id)}/redrive`)}
          describe=${(r) => (r?.redriven ? 'Redriven.' : 'Nothing to redrive.')}
          onDone=${() => done(`Redrove delivery ${d.id}.`)}
        />`}
    />
    ${pages.more && html`<button type="button" onClick=${pages.loadMore}>Load more</button>`}
    <${Replay} captures=${names.captures} subscriptions=${names.subscriptions} />
  </section>`;
}

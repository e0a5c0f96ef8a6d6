// A delivery's attempt history: each attempt with the request it sent and the response it got (HTTP), and the
// redrives, resends and replays that started a new series of attempts.
import { html, time } from '../api.js';
import { Badge } from '../components.js';

const COLUMNS = 7;

/** What a history event (attempt null) says, and the class of its row. */
const EVENTS = {
  redriven: { className: 'redrive', text: 'redriven: a new series of attempts, from 1' },
  resent: {
    className: 'redrive resend',
    text: 'resent: a new series of attempts, from 1 — the same message (same webhook-id)',
  },
  replayed: {
    className: 'redrive replay',
    text: 'replayed: a new series of attempts, from 1 — the same message (same webhook-id)',
  },
};

const headerLines = (headers) =>
  Object.entries(headers ?? {})
    .map(([name, value]) => `${name}: ${value}`)
    .join('\n');

/** The request headers sent and the response (status, headers, the first 1 KB of the body), folded. */
function Exchange({ a }) {
  if (!a.request && !a.response) return html`<td class="muted">–</td>`;
  const r = a.response;
  return html`<td>
    <details class="exchange">
      <summary>Request and response</summary>
      <h4>Request headers</h4>
      <pre class="code" aria-label=${`Request headers of attempt ${a.attempt}`}>${headerLines(a.request?.headers)}</pre>
      <h4>Response${r ? ` ${r.status}` : ''}</h4>
      ${
        r
          ? html`<pre class="code" aria-label=${`Response of attempt ${a.attempt}`}>
${headerLines(r.headers)}${r.body ? `\n\n${r.body}` : ''}</pre>
              ${r.bodyTruncated && html`<p class="muted">The body goes on: only its first 1 KB is kept.</p>`}`
          : html`<p class="muted">No response came (${a.error ?? 'no answer'}).</p>`
      }
    </details>
  </td>`;
}

export function AttemptLog({ attempts }) {
  const entries = attempts ?? [];
  return html`<table>
    <caption>
      Attempts
    </caption>
    <thead>
      <tr>
        <th scope="col">#</th>
        <th scope="col">at</th>
        <th scope="col">outcome</th>
        <th scope="col">status</th>
        <th scope="col">duration</th>
        <th scope="col">error</th>
        <th scope="col">request / response</th>
      </tr>
    </thead>
    <tbody>
      ${
        entries.length === 0 &&
        html`<tr>
          <td colspan=${COLUMNS} class="muted">No attempts recorded yet.</td>
        </tr>`
      }
      ${entries.map((a, i) => {
        if (a.attempt === null) {
          const event = EVENTS[a.outcome] ?? { className: 'redrive', text: a.outcome };
          return html`<tr class=${event.className}>
            <td colspan=${COLUMNS}>${event.text} (${time(a.at)})</td>
          </tr>`;
        }
        // Logs written before redrives were recorded: an attempt number that does not grow marks one.
        const previous = entries[i - 1];
        const unmarked = previous && previous.attempt !== null && a.attempt <= previous.attempt;
        return html`${
            unmarked &&
            html`<tr class="redrive">
              <td colspan=${COLUMNS}>redriven: attempts count again from 1</td>
            </tr>`
          }
          <tr>
            <th scope="row">${a.attempt}</th>
            <td>${time(a.at)}</td>
            <td><${Badge} state=${a.outcome} /></td>
            <td class="mono">${a.status ?? '–'}</td>
            <td>${a.durationMs !== undefined && a.durationMs !== null ? `${a.durationMs} ms` : '–'}</td>
            <td class="last-error">${a.error ?? ''}</td>
            <${Exchange} a=${a} />
          </tr>`;
      })}
    </tbody>
  </table>`;
}

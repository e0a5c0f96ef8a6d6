// The filter-policy tester: a message and its attributes against the subscriptions' filter policies.
import { useState } from 'preact/hooks';
import { html, post } from '../api.js';
import { ErrorBox, NameSelect } from '../components.js';
import { useNames } from './deliveries.js';

const EXAMPLE_MESSAGE = '{\n  "op": "INSERT",\n  "after": { "status": "paid", "total": "120.00" }\n}';
const EXAMPLE_ATTRIBUTES = '{\n  "op": "INSERT",\n  "table": "orders"\n}';

/** Parses the attributes box: empty is none; otherwise a JSON object, or a clear error. */
function parseAttributes(text) {
  if (!text.trim()) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`Attributes: not JSON (${err.message}); write an object such as {"op": "INSERT"}.`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw new Error('Attributes: write a JSON object such as {"op": "INSERT"}.');
  return value;
}

export function FilterTester() {
  const names = useNames();
  const [topic, setTopic] = useState('');
  const [message, setMessage] = useState(EXAMPLE_MESSAGE);
  const [attributes, setAttributes] = useState(EXAMPLE_ATTRIBUTES);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      setResult(
        await post('filter-policy/test', {
          topic: topic || undefined,
          message,
          attributes: parseAttributes(attributes),
        }),
      );
    } catch (err) {
      setResult(null);
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<section aria-labelledby="filter-title">
    <h1 id="filter-title">Filter-policy tester</h1>
    <p class="hint">
      Paste a message (its body; policies with <code>filterPolicyScope: "MessageBody"</code> match on it) and its
      attributes, and see which subscriptions would get it.
    </p>
    <form class="panel stack" onSubmit=${submit}>
      <div class="filters">
        <${NameSelect}
          id="t-topic"
          label="Topic"
          names=${names.topics}
          value=${topic}
          onChange=${setTopic}
          allLabel="all topics"
        />
      </div>
      <label for="t-message">Message</label>
      <textarea
        id="t-message"
        rows="8"
        spellcheck="false"
        class="mono"
        value=${message}
        onInput=${(e) => setMessage(e.currentTarget.value)}
      ></textarea>
      <label for="t-attributes">Attributes (JSON object)</label>
      <textarea
        id="t-attributes"
        rows="4"
        spellcheck="false"
        class="mono"
        value=${attributes}
        onInput=${(e) => setAttributes(e.currentTarget.value)}
      ></textarea>
      <div><button type="submit" class="primary" disabled=${busy}>Test</button></div>
    </form>
    <${ErrorBox} error=${error} />
    ${
      result &&
      html`<table aria-live="polite">
        <caption>
          ${result.subscriptions.filter((s) => s.matched).length} of ${result.subscriptions.length} subscriptions match
        </caption>
        <thead>
          <tr>
            <th scope="col">subscription</th>
            <th scope="col">topic</th>
            <th scope="col">matches</th>
            <th scope="col">why</th>
          </tr>
        </thead>
        <tbody>
          ${result.subscriptions.map(
            (s) =>
              html`<tr class=${s.matched ? 'match' : 'no-match'}>
                <th scope="row">${s.name}</th>
                <td>${s.topic}</td>
                <td>${s.matched ? '✓ yes' : '✗ no'}</td>
                <td>${s.reason ?? ''}</td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
  </section>`;
}

// Find a row's deliveries: the search fields of the deliveries list, and a delivery's row key as a link to its row.
import { useEffect, useState } from 'preact/hooks';
import { html, link } from '../api.js';
import { NameSelect } from '../components.js';

export const OPS = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];
/** The query parameters of a search (besides subscription, topic, state). */
export const SEARCH_KEYS = ['capture', 'op', 'rowKey'];

/** A row key as people type it back into the search: id=42, tenant=a,id=42. */
export function formatRowKey(key) {
  if (!key || typeof key !== 'object') return '';
  return Object.entries(key)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(',');
}

/** The row key cell: a link to every delivery of that row. */
export function RowKeyCell({ d }) {
  const key = formatRowKey(d.rowKey);
  if (!key) return html`<td class="muted">–</td>`;
  return html`<td>
    <a
      class="mono"
      href=${link('deliveries', { capture: d.capture ?? '', rowKey: key })}
      title=${`Every delivery of this ${d.capture ?? ''} row`}
      >${key}</a
    >${d.op ? html` <small class="muted">${d.op}</small>` : ''}
  </td>`;
}

/**
 * Capture and operation selects, and a row key field that searches on submit (Enter or the button), not per
 * keystroke. onChange(key, value) sets one filter.
 */
export function SearchFields({ filter, captures, onChange }) {
  const [rowKey, setRowKey] = useState(filter.rowKey ?? '');
  useEffect(() => setRowKey(filter.rowKey ?? ''), [filter.rowKey]);
  return html`<${NameSelect}
      id="f-capture"
      label="Capture"
      names=${captures}
      value=${filter.capture}
      onChange=${(v) => onChange('capture', v)}
    />
    <${NameSelect} id="f-op" label="Operation" names=${OPS} value=${filter.op} onChange=${(v) => onChange('op', v)} />
    <label for="f-row-key">Row key</label>
    <input
      id="f-row-key"
      type="search"
      class="mono"
      placeholder='id=42 or {"id": 42}'
      value=${rowKey}
      size="22"
      aria-describedby="f-row-key-hint"
      onInput=${(e) => setRowKey(e.currentTarget.value)}
    />
    <button
      type="submit"
      onClick=${(e) => {
        e.preventDefault();
        onChange('rowKey', rowKey.trim());
      }}
    >
      Search
    </button>
    <small id="f-row-key-hint" class="muted">the row's primary key, e.g. id=42</small>`;
}

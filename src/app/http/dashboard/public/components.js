// Small pieces shared by the pages: data loading, errors, badges, buttons that call the API.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { html } from './api.js';

/**
 * Loads with load(signal) now and every intervalMs (0: once) while the tab is visible, again when deps change.
 * Returns { data, error, loading, reload }; keeps the last data while a refresh fails.
 */
export function useLoad(load, deps, intervalMs = 0) {
  const [state, setState] = useState({ data: undefined, error: undefined, loading: true });
  const latest = useRef(load);
  latest.current = load;
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    const controller = new AbortController();
    let timer;
    const run = async () => {
      // A hidden tab skips its refreshes (the first load still happens).
      if (document.hidden && timer !== undefined) {
        timer = setTimeout(run, intervalMs);
        return;
      }
      try {
        const data = await latest.current(controller.signal);
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false });
      } catch (error) {
        if (!controller.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      }
      if (intervalMs && !controller.signal.aborted) timer = setTimeout(run, intervalMs);
    };
    setState((s) => ({ ...s, loading: true }));
    run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick, intervalMs]);
  return { ...state, reload };
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    <strong>${error.status ? `${error.status} ${error.code ?? ''}` : 'Error'}</strong> ${error.message}
  </div>`;
}

export function Badge({ state }) {
  return html`<span class=${`badge badge-${String(state ?? 'unknown').replace(/[^a-z_]/gi, '')}`}
    >${String(state ?? '–').replace('_', ' ')}</span
  >`;
}

/**
 * A button that runs an async action, is disabled while it runs, and reports the outcome in a live region next to it.
 * describe(result) turns the action's result into the message shown.
 */
export function ActionButton({
  label,
  ariaLabel,
  action,
  describe = () => 'Done.',
  onDone,
  confirm: question,
  kind = '',
}) {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState(null);
  const click = async () => {
    if (question && !window.confirm(question)) return;
    setBusy(true);
    setOutcome(null);
    try {
      const result = await action();
      setOutcome({ ok: true, text: describe(result) });
      onDone?.(result);
    } catch (err) {
      setOutcome({ ok: false, text: err.message });
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button type="button" class=${kind} aria-label=${ariaLabel} onClick=${click} disabled=${busy} aria-busy=${busy}>
      ${label}
    </button>
    <span class=${outcome ? (outcome.ok ? 'outcome ok' : 'outcome failed') : 'outcome'} role="status"
      >${outcome?.text ?? ''}</span
    >
  </span>`;
}

/** A labelled select of names (subscriptions, topics, captures), with an empty "all" choice unless required. */
export function NameSelect({ id, label, names, value, onChange, allLabel = 'all', required = false }) {
  return html`<label for=${id}>${label}</label>
    <select id=${id} value=${value} required=${required} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${required ? html`<option value="" disabled>choose…</option>` : html`<option value="">${allLabel}</option>`}
      ${(names ?? []).map((n) => html`<option value=${n}>${n}</option>`)}
    </select>`;
}

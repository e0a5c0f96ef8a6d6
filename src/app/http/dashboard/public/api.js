// The admin API client: every call carries the bearer token kept in sessionStorage (gone when the tab closes).
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

const TOKEN_KEY = 'rowcast.token';

export const getToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const setToken = (token) =>
  token ? sessionStorage.setItem(TOKEN_KEY, token) : sessionStorage.removeItem(TOKEN_KEY);

/** An API error: its HTTP status, the server's code and its message (which says what to fix). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Listeners told when the server refuses the token (the app then shows the login form). */
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

// Relative to the page (…/dashboard/), so a proxy prefix in front of rowcast is kept.
const apiUrl = (path, query) => {
  const url = new URL(`../api/${path}`, document.baseURI);
  for (const [k, v] of Object.entries(query ?? {}))
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  return url;
};

function headers(extra) {
  const token = getToken();
  return { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function failure(res) {
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  // The contract's shape is { error: { code, message } }; older routes answer { error: code, message }.
  const err = body?.error;
  const code = typeof err === 'object' && err ? err.code : (err ?? `http_${res.status}`);
  const message = (typeof err === 'object' && err ? err.message : body?.message) ?? `${res.status} ${res.statusText}`;
  if (res.status === 401) for (const fn of unauthorizedListeners) fn();
  return new ApiError(res.status, code, message);
}

/** GET/POST an /api path; resolves with the parsed JSON body, rejects with an ApiError. */
export async function api(path, { method = 'GET', query, body, signal } = {}) {
  const res = await fetch(apiUrl(path, query), {
    method,
    signal,
    headers: headers(body !== undefined ? { 'content-type': 'application/json' } : {}),
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

/** POST shorthand. */
export const post = (path, body = {}) => api(path, { method: 'POST', body });

/**
 * Reads a Server-Sent Events stream with fetch() (EventSource cannot send an Authorization header) and calls
 * onEvent(type, data) per event, reconnecting with backoff until the returned stop() is called.
 * onStatus receives 'connecting' | 'open' | 'error: …'.
 */
export function streamEvents(path, onEvent, onStatus = () => {}) {
  const controller = new AbortController();
  let delay = 500;
  (async () => {
    while (!controller.signal.aborted) {
      onStatus('connecting');
      try {
        const res = await fetch(apiUrl(path), {
          headers: headers({ accept: 'text/event-stream' }),
          signal: controller.signal,
          cache: 'no-store',
        });
        if (!res.ok) throw await failure(res);
        onStatus('open');
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = 'message';
            const data = [];
            for (const line of block.split('\n')) {
              if (!line || line.startsWith(':')) continue; // heartbeat comments
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'event') type = val;
              else if (field === 'data') data.push(val);
            }
            if (!data.length) continue;
            let parsed = data.join('\n');
            try {
              parsed = JSON.parse(parsed);
            } catch {
              // not JSON: hand over the text
            }
            onEvent(type, parsed);
          }
        }
      } catch (err) {
        if (controller.signal.aborted) return;
        onStatus(`error: ${err.message}`);
        if (err instanceof ApiError && err.status === 401) return;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return () => controller.abort();
}

// ---- formatting -------------------------------------------------------------------------------------------------

const rateFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
export const rate = (n) => (n === undefined || n === null ? '–' : `${rateFormat.format(n)}/min`);
export const count = (n) => (n === undefined || n === null ? '–' : rateFormat.format(n));

export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { hour12: false });
}

export function age(seconds) {
  if (seconds === undefined || seconds === null) return '–';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A message body for display: pretty JSON when it is JSON, the text otherwise. */
export function pretty(body) {
  if (body === undefined || body === null) return '';
  if (typeof body !== 'string') return JSON.stringify(body, null, 2);
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

/** The current hash route: #/path?query → { path: ['path'], query: URLSearchParams }. */
export function currentRoute() {
  const [path, search = ''] = location.hash.replace(/^#\/?/, '').split('?');
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search) };
}

export const link = (path, query) => {
  const q = new URLSearchParams(
    Object.entries(query ?? {}).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  ).toString();
  return `#/${path}${q ? `?${q}` : ''}`;
};

// The dashboard shell: login (bearer token in sessionStorage), navigation, and hash routes to the pages.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, currentRoute, getToken, html, onUnauthorized, setToken } from './api.js';
import { Charts } from './pages/charts.js';
import { DeadLetters } from './pages/dead-letters.js';
import { Deliveries, DeliveryDetail } from './pages/deliveries.js';
import { FilterTester } from './pages/filter-tester.js';
import { Overview } from './pages/overview.js';
import { Tail } from './pages/tail.js';

const PAGES = [
  { path: 'overview', title: 'Overview', page: Overview },
  { path: 'tail', title: 'Live tail', page: Tail },
  { path: 'deliveries', title: 'Deliveries', page: Deliveries },
  { path: 'dead-letters', title: 'Dead letters', page: DeadLetters },
  { path: 'filter-tester', title: 'Filter tester', page: FilterTester },
  { path: 'charts', title: 'Charts', page: Charts },
];

function useRoute() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

function Login({ problem, onLogin }) {
  const [value, setValue] = useState('');
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);
  const submit = (e) => {
    e.preventDefault();
    onLogin(value.trim());
  };
  return html`<main class="login">
    <h1>rowcast</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <label for="token">API token</label>
      <input
        id="token"
        ref=${input}
        type="password"
        autocomplete="current-password"
        required
        value=${value}
        onInput=${(e) => setValue(e.currentTarget.value)}
      />
      <button type="submit">Sign in</button>
      <p id="login-help" class="hint">
        The value of <code>runtime.http.token</code>. It is kept in this tab only (sessionStorage).
      </p>
      ${problem && html`<p class="error" role="alert">${problem}</p>`}
    </form>
  </main>`;
}

function App() {
  // 'checking' → 'in' | 'login'; the server decides whether a token is needed.
  const [auth, setAuth] = useState({ state: 'checking', problem: null });
  const route = useRoute();

  const check = async () => {
    const tried = getToken();
    try {
      await api('overview');
      setAuth({ state: 'in', problem: null });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setToken('');
        setAuth({
          state: 'login',
          problem: tried ? 'The server did not accept this token; check runtime.http.token.' : null,
        });
      } else {
        // Signed in, but the API failed: the pages show their own errors.
        setAuth({ state: 'in', problem: null });
      }
    }
  };
  useEffect(() => {
    check();
    return onUnauthorized(() => {
      setToken('');
      setAuth({ state: 'login', problem: 'The server refused the token (it may have changed); sign in again.' });
    });
  }, []);

  if (auth.state === 'checking') return html`<p class="loading" role="status">Connecting…</p>`;
  if (auth.state === 'login') {
    return html`<${Login}
      problem=${auth.problem}
      onLogin=${(token) => {
        setToken(token);
        check();
      }}
    />`;
  }

  const [first = 'overview', ...rest] = route.path;
  const current = PAGES.find((p) => p.path === first) ?? PAGES[0];
  const Page = first === 'deliveries' && rest[0] ? DeliveryDetail : current.page;
  document.title = `${current.title} · rowcast`;
  const signOut = () => {
    setToken('');
    setAuth({ state: 'login', problem: null });
  };
  return html` <header class="top">
      <a class="brand" href="#/overview">rowcast</a>
      <nav aria-label="Pages">
        <ul>
          ${PAGES.map((p) => html`<li><a href=${`#/${p.path}`} aria-current=${p === current ? 'page' : undefined}>${p.title}</a></li>`)}
        </ul>
      </nav>
      ${getToken() && html`<button type="button" class="link" onClick=${signOut}>Sign out</button>`}
    </header>
    <main id="main" tabindex="-1">
      <${Page} key=${`${route.path.join('/')}?${route.query}`} params=${rest} query=${route.query} />
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));

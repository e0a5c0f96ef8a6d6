import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { apiError } from '../admin-api/api-support.js';

/** The dashboard's own files; beside this module both in src (tsx) and in dist (scripts/copy-sql.mjs copies them). */
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

const require = createRequire(import.meta.url);

/** A package's file, found through the package's own resolution (its exports or main), not a node_modules path. */
function packageFile(specifier: string, file?: string): string {
  const resolved = require.resolve(specifier);
  return file ? join(dirname(resolved), file) : resolved;
}

/**
 * The browser libraries, served under /dashboard/vendor/ by name; index.html's import map points bare imports
 * ("preact", "preact/hooks", "htm", "uplot") at them. Only these files are reachable.
 */
function vendorFiles(): Map<string, string> {
  return new Map([
    ['preact.mjs', packageFile('preact')],
    ['preact-hooks.mjs', packageFile('preact/hooks')],
    ['htm.mjs', packageFile('htm', 'htm.mjs')],
    // uPlot has no exports map: main is dist/uPlot.cjs.js, the ES module and stylesheet sit beside it.
    ['uplot.mjs', packageFile('uplot', 'uPlot.esm.js')],
    ['uplot.css', packageFile('uplot', 'uPlot.min.css')],
  ]);
}

/**
 * The shell carries the import map inline (browsers do not load external import maps), so the Content-Security-Policy
 * allows that one script by its hash and nothing else inline.
 */
function loadShell(): { html: string; csp: string } {
  const html = readFileSync(join(PUBLIC_DIR, 'index.html'), 'utf8');
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (importMap === undefined) throw new Error('dashboard: index.html has no import map');
  const hash = createHash('sha256').update(importMap).digest('base64');
  const csp = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${hash}'`,
    // Preact and uPlot set element styles at run time.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'none'",
  ].join('; ');
  return { html, csp };
}

/**
 * GET /dashboard/ — the web dashboard: an HTML shell, its modules and stylesheet, and the browser libraries.
 * All of it is public (it holds no data); the page asks for the bearer token and sends it on every /api call.
 * Paths inside the page are relative, so it also works behind a proxy that serves rowcast under a prefix.
 */
export function dashboardRoutes(): HttpRoutePlugin {
  return async (app) => {
    const shell = loadShell();
    const vendor = vendorFiles();

    // Everything registered in this scope (including @fastify/static's routes) is served without the token.
    app.addHook('onRoute', (route) => {
      route.config = { ...(route.config as object), public: true };
    });

    const sendShell = async (_request: unknown, reply: FastifyReply) =>
      reply
        .header('content-type', 'text/html; charset=utf-8')
        .header('content-security-policy', shell.csp)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache')
        .send(shell.html);

    // A relative redirect keeps any proxy prefix; the page's relative links need the trailing slash.
    app.get('/dashboard', async (_request, reply) => reply.redirect('dashboard/', 302));
    // The server's root has nothing of its own: a browser pointed at it lands on the dashboard.
    app.get('/', async (_request, reply) => reply.redirect('dashboard/', 302));
    app.get('/dashboard/', sendShell);
    app.get('/dashboard/index.html', sendShell);

    await app.register(fastifyStatic, {
      root: PUBLIC_DIR,
      prefix: '/dashboard/assets/',
      index: false,
      // The shell has its own route (with the CSP); the rest are modules and CSS.
      allowedPath: (pathName) => pathName !== '/index.html',
      cacheControl: true,
      maxAge: 0,
    });

    app.get<{ Params: { file: string } }>('/dashboard/vendor/:file', async (request, reply) => {
      const path = vendor.get(request.params.file);
      if (!path) return reply.code(404).send(apiError('not_found', `No dashboard library ${request.params.file}.`));
      // Library versions change only with an upgrade, which restarts the process: cache for a day.
      return reply
        .header('cache-control', 'public, max-age=86400')
        .sendFile(path.slice(dirname(path).length + 1), dirname(path));
    });
  };
}

// The redaction helpers apart from the logger: apply, the admin API and the CLI print settings and endpoints without
// loading pino.

/** A connection string fit for logs: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}

/**
 * Credentials in URLs within any text (an endpoint, an error message) replaced by "***": the password of
 * `scheme://user:password@`, and query parameters that look like credentials (`?token=…`, `&api_key=…`).
 */
export function redactCredentials(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/@]+@/gi, '$1***@')
    .replace(/([?&][^=&#\s]*(?:token|key|secret|sig|pass|auth|code|credential)[^=&#\s]*=)[^&#\s]+/gi, '$1***');
}

/** An endpoint fit to show: its password and credential-like query values masked (the user name stays: it tells which account). */
export function redactEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return redactCredentials(endpoint);
  }
  if (!url.host) return endpoint; // mailto:, nats:subject … carry no credentials
  if (url.password) url.password = '***';
  for (const key of [...url.searchParams.keys()]) {
    if (/token|key|secret|sig|pass|auth|code|credential/i.test(key)) url.searchParams.set(key, '***');
  }
  return url.toString();
}

/** Keys whose values are secrets wherever they appear in settings (SMTP pass, broker passwords and tokens…). */
const SECRET_KEY = /^(pass|password|passphrase|secret|token|authorization|api[-_]?key|x-api-key)$/i;
/** A header value that only names environment variables ("${API_KEY}") holds no secret itself. */
const ENV_REFERENCES = /^(\$\{[A-Za-z_][A-Za-z0-9_]*\})+$/;

/**
 * A copy of settings fit for printing: values under secret-looking keys and every header value (headers carry API
 * keys) replaced by "***", except references to environment variables; passwords in URLs replaced too.
 */
export function redactSecrets(value: unknown, key?: string): unknown {
  if (typeof value === 'string') return key !== undefined && SECRET_KEY.test(key) ? '***' : redactCredentials(value);
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k.toLowerCase() === 'headers' && v && typeof v === 'object' && !Array.isArray(v)
          ? Object.fromEntries(
              Object.entries(v).map(([name, h]) => [name, typeof h === 'string' && ENV_REFERENCES.test(h) ? h : '***']),
            )
          : redactSecrets(v, k),
      ]),
    );
  }
  return value;
}

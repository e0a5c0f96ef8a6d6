import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Secrets and credentials are redacted wherever they appear in a logged object. */
export function createLogger(level: string = process.env.ROWCAST_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name: 'rowcast',
    level,
    redact: { paths: ['secret', '*.secret', '*.*.secret', 'password', '*.password', 'headers.authorization', '*.headers.authorization', 'databaseUrl'], censor: '[redacted]' },
  });
}

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

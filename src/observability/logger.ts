import { type DestinationStream, pino, type Logger } from 'pino';
import { redactCredentials } from './redact.js';

// Re-exported: they were the logger's before redact.ts, and a log line is where most of them are used.

export type { Logger };

/**
 * Structured JSON logs (to stdout, or `destination`). Secrets and credentials are redacted wherever they appear in
 * a logged object: fields named like secrets, and passwords or credential parameters of URLs inside any string
 * field of the first two levels (an error message that quotes a connection string).
 */
export function createLogger(
  level: string = process.env.ROWCAST_LOG_LEVEL ?? 'info',
  destination?: DestinationStream,
): Logger {
  const options = {
    name: 'rowcast',
    level,
    redact: {
      paths: [
        'secret',
        '*.secret',
        '*.*.secret',
        'password',
        '*.password',
        'pass',
        '*.pass',
        'token',
        '*.token',
        'authorization',
        'headers.authorization',
        '*.headers.authorization',
        'databaseUrl',
      ],
      censor: '[redacted]',
    },
    formatters: { log: redactStrings },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** URL credentials out of the string fields of a log object (two levels deep: errors are logged as { err: { … } }). */
function redactStrings(object: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(object)) {
    let clean = value;
    if (typeof value === 'string')
      clean = value.includes('://') || value.includes('=') ? redactCredentials(value) : value;
    else if (
      depth === 0 &&
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      !(value instanceof Date) &&
      !(value instanceof Error)
    )
      clean = redactStrings(value as Record<string, unknown>, 1);
    if (clean !== value) (copy ??= { ...object })[key] = clean;
  }
  return copy ?? object;
}

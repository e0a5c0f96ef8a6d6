/**
 * Every error rowcast raises on purpose carries a stable code, so callers and scripts can branch on it
 * without parsing messages. Messages say what is wrong and how to fix it.
 */
export const ErrorCodes = {
  CONFIG_NOT_FOUND: 'ROWCAST_CONFIG_NOT_FOUND',
  CONFIG_INVALID: 'ROWCAST_CONFIG_INVALID',
  DATABASE_URL_MISSING: 'ROWCAST_DATABASE_URL_MISSING',
  DATABASE_URL_INVALID: 'ROWCAST_DATABASE_URL_INVALID',
  MIGRATIONS_PENDING: 'ROWCAST_MIGRATIONS_PENDING',
  MIGRATION_FAILED: 'ROWCAST_MIGRATION_FAILED',
  CAPTURE_INVALID: 'ROWCAST_CAPTURE_INVALID',
  NOT_FOUND: 'ROWCAST_NOT_FOUND',
  /** A request's arguments are wrong (admin API: 400). */
  INVALID_ARGUMENT: 'ROWCAST_INVALID_ARGUMENT',
  /** The request cannot apply to the current state (admin API: 409), e.g. replaying a capture that targets a function. */
  CONFLICT: 'ROWCAST_CONFLICT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class RowcastError extends Error {
  readonly code: ErrorCode;
  /** One line per problem, each naming where it is and how to fix it. */
  readonly problems: readonly string[];

  constructor(code: ErrorCode, message: string, problems: readonly string[] = [], options?: { cause?: unknown }) {
    super(problems.length ? `${message}\n${problems.map((p) => `  - ${p}`).join('\n')}` : message, options);
    this.name = 'RowcastError';
    this.code = code;
    this.problems = problems;
  }
}

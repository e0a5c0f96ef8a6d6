import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseDuration } from '../../../config/duration.js';
import { ErrorCodes, RowcastError } from '../../../model/errors.js';
import type { Logger } from '../../../observability/logger.js';
import { MAX_PAGE } from '../../../admin/inspect/page.js';

/**
 * The error body of every route of the HTTP server (the admin API, /metrics, topic streams, claim-check links):
 * `{ error: { code, message } }`, the message saying what is wrong and how to fix it.
 */
export interface ApiError {
  error: { code: string; message: string };
}

export const apiError = (code: string, message: string): ApiError => ({ error: { code, message } });

const STATUS: Partial<Record<string, number>> = {
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.CONFLICT]: 409,
  [ErrorCodes.INVALID_ARGUMENT]: 400,
  [ErrorCodes.CONFIG_INVALID]: 400,
};

const CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

/** The error code of a 4xx status (bad_request for those without a name of their own). */
export const errorCodeFor = (status: number): string => CODES[status] ?? 'bad_request';

/**
 * JSON bodies of the /api scope: an empty body is no body (actions without parameters may be posted with or
 * without `{}`), and a malformed one is a 400 that says so.
 */
export function installJsonBodies(app: FastifyInstance): void {
  // fastify's own parser (it refuses __proto__ and constructor.prototype keys), behind the empty-body check.
  const secure = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (request, body, done) => {
    if (String(body).trim() === '') return done(null, undefined);
    secure(request, String(body), (err, value) =>
      err
        ? done(
            new RowcastError(
              ErrorCodes.INVALID_ARGUMENT,
              `Invalid request body: not JSON (${err.message}); send a JSON object, e.g. {}.`,
            ),
            undefined,
          )
        : done(null, value),
    );
  });
}

/** Errors of the /api scope in the API's shape: RowcastErrors by their code, fastify's own (bad JSON…) by status. */
export function installApiErrors(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err instanceof RowcastError && STATUS[err.code]) {
      return reply.code(STATUS[err.code]!).send(apiError(CODES[STATUS[err.code]!]!, err.message));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(apiError(errorCodeFor(err.statusCode), err.message));
    }
    log.error(
      { err: err.message, method: request.method, route: request.routeOptions.url },
      'admin api request failed',
    );
    return reply.code(500).send(apiError('internal_error', 'The request failed; see the rowcast log.'));
  });
}

/** Validates a request part with zod; problems become one 400 naming each field and what it should be. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'query' | 'body' | 'path'): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : where}: ${i.message}`);
  throw new RowcastError(
    ErrorCodes.INVALID_ARGUMENT,
    `Invalid ${where === 'path' ? 'path' : `request ${where}`}: ${problems.join('; ')}.`,
  );
}

/** A point in time: ISO 8601 ("2026-11-27T10:00:00Z") or a duration ago ("15m", "2h"). */
export const time = z
  .string({ error: 'a time: ISO 8601 (2026-11-27T10:00:00Z) or a duration ago (15m, 2h, 7d)' })
  .transform((v, ctx) => {
    const ago = parseDuration(v);
    if (ago !== undefined) return new Date(Date.now() - ago);
    const at = Date.parse(v);
    if (Number.isNaN(at)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${v}" is neither an ISO 8601 time (2026-11-27T10:00:00Z) nor a duration ago (15m, 2h, 7d)`,
      });
      return z.NEVER;
    }
    return new Date(at);
  });

/** A duration: "15m", "1h", "30s" or milliseconds. */
export const durationParam = z.string({ error: 'a duration such as "10s", "1m", "15m", "1h"' }).transform((v, ctx) => {
  const ms = parseDuration(/^\d+$/.test(v) ? Number(v) : v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration; write e.g. "10s", "1m", "15m", "1h"` });
    return z.NEVER;
  }
  return ms;
});

export const page = {
  limit: z.coerce
    .number({ error: `a whole number from 1 to ${MAX_PAGE}` })
    .int(`a whole number from 1 to ${MAX_PAGE}`)
    .min(1, `at least 1`)
    .max(MAX_PAGE, `at most ${MAX_PAGE}`)
    .optional(),
  cursor: z.string().optional(),
  since: time.optional(),
  until: time.optional(),
};

/** Names in paths: the config's name rules (letters, digits, "-", "_"). */
export const name = z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'a name of letters, digits, "-" or "_"');

export const nameParams = z.object({ name });
export const idParams = z.object({
  id: z
    .string()
    .regex(
      /^(\d{1,19}|[A-Za-z0-9_-]{1,256}@\d{1,19})$/,
      "a delivery id (a whole number, or subscription@seq for a cursor's delivery)",
    ),
});

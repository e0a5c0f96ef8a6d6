import { ErrorCodes, RowcastError } from '../../model/errors.js';

/*
 * Pages of the read models' lists: by keyset (newest first), never by offset, so a page costs the same however deep
 * it is and rows written meanwhile do not shift the pages after it.
 */

/** Lists: `limit` (1–500, default 50) and an opaque `cursor` from the previous page's nextCursor. */
export interface PageRequest {
  limit?: number;
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

/** A cursor is the keyset of the last item, base64url-encoded so that clients treat it as opaque. */
export function encodeCursor(kind: string, key: string): string {
  return Buffer.from(`${kind}:${key}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | undefined): string | null {
  if (cursor === undefined || cursor === '') return null;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const [k, key] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
  if (k !== kind || (!/^\d{1,19}$/.test(key) && !/^[0-9TZ:.+-]{10,40}\|[0-9a-f-]{36}$/.test(key))) {
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `cursor "${cursor}" is not a cursor of this list; pass the nextCursor of the previous page, or none for the first page.`,
    );
  }
  return key;
}

export function limitOf(page: PageRequest): number {
  const limit = page.limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new RowcastError(
      ErrorCodes.INVALID_ARGUMENT,
      `limit must be a whole number from 1 to ${MAX_PAGE}, not ${limit}.`,
    );
  }
  return limit;
}

/** Takes limit + 1 rows: the extra one only says whether there is a next page. */
export function pageOf<R, T>(rows: R[], limit: number, map: (r: R) => T, key: (r: R) => string, kind: string): Page<T> {
  const more = rows.length > limit;
  const items = rows.slice(0, limit);
  return { items: items.map(map), nextCursor: more ? encodeCursor(kind, key(items.at(-1)!)) : null };
}

export interface TimeRange {
  since?: Date;
  until?: Date;
}

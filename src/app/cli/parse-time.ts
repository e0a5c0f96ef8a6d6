import { parseDuration } from '../../config/duration.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';

/** "2026-11-27T10:00:00Z" or a duration ago ("90m", "2h"). */
export function parseTime(flag: string, value: string): Date {
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(Date.now() - ago);
  const at = Date.parse(value);
  if (Number.isNaN(at))
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      `${flag} "${value}" is neither a date (2026-11-27T10:00:00Z) nor a duration ago (90m, 2h, 7d).`,
    );
  return new Date(at);
}

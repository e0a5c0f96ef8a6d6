import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "5s", "2m", "6h", "7d" (or a number of milliseconds) into milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

/** A zod type for durations: a number of milliseconds or a string such as "5s". Parses to milliseconds. */
export const duration = z
  .union([z.number(), z.string()], {
    error: 'write milliseconds (1500) or a string like "250ms", "5s", "2m", "6h", "7d"',
  })
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `not a duration: ${JSON.stringify(v)}; write milliseconds (1500) or a string like "250ms", "5s", "2m", "6h", "7d"`,
      });
      return z.NEVER;
    }
    return ms;
  });

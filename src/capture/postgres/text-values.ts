/*
 * PostgreSQL's text form of a value (as pgoutput sends it, with datestyle ISO) → the JSON the store's captures
 * write for it with to_jsonb: booleans and small numbers as JSON, bigint and numeric as strings (exact), json and
 * jsonb as the JSON value, timestamps in ISO 8601 with "T" and a full zone offset. Everything else (dates,
 * intervals, uuids, bytea as "\x…", arrays in PostgreSQL's {…} form, ranges, user types) stays PostgreSQL's text.
 */

const BOOL = 16;
const NUMBERS = new Set([21, 23, 26, 700, 701]); // int2, int4, oid, float4, float8
const JSON_TYPES = new Set([114, 3802]);
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;

export function pgTextValue(text: string | null, typeOid: number): unknown {
  if (text === null) return null;
  if (typeOid === BOOL) return text === 't';
  if (NUMBERS.has(typeOid)) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text; // NaN and ±Infinity stay strings, as to_jsonb writes them
  }
  if (JSON_TYPES.has(typeOid)) return JSON.parse(text) as unknown;
  if (typeOid === TIMESTAMP) return text.replace(' ', 'T');
  if (typeOid === TIMESTAMPTZ) return text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  return text;
}

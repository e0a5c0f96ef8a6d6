/*
 * PostgreSQL's text form of a value (as pgoutput sends it, with datestyle ISO) → the JSON the store's trigger
 * capture writes for it with to_jsonb: booleans and small numbers as JSON, bigint and numeric columns (and arrays
 * of them) as strings (exact), json and jsonb as the JSON value, timestamps in ISO 8601 with "T" and a full zone
 * offset; arrays as JSON arrays (nested for several dimensions) of their elements converted the same way.
 * With the source's catalog (a TypeLookup, see source-types.ts): composites as objects of their fields, domains as
 * their base type, arrays of enums, ranges, composites and domains as JSON arrays; inside a composite, a domain or
 * an array of user types, bigint and numeric are JSON numbers with all their digits (RAW_NUMBER), as to_jsonb
 * writes them there. Everything else (dates, intervals, uuids, bytea as "\x…", enums, ranges) stays PostgreSQL's
 * text, as to_jsonb writes it.
 */

const BOOL = 16;
const NUMBERS = new Set([21, 23, 26, 700, 701]); // int2, int4, oid, float4, float8
const EXACT = new Set([20, 1700]); // int8, numeric
const JSON_TYPES = new Set([114, 3802]);
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;
/** Built-in types that are text wherever they are: nothing to look up for them. */
const TEXT_TYPES = new Set([17, 18, 19, 25, 650, 774, 829, 869, 1042, 1043, 1082, 1083, 1186, 1266, 2950]);

/**
 * A bigint or numeric that must stay a JSON number with every digit (inside a composite): held as this marker
 * and its text until the events are serialized (eventsJson), where it becomes the bare number. No string value
 * that reaches the store can hold it: jsonb refuses U+0000 in strings.
 */
const RAW_NUMBER = '\u0000rowcast-number:';
const JSON_NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
const RAW_NUMBER_JSON = /"\\u0000rowcast-number:(-?[0-9.eE+-]+)"/g;

/** Events (or anything holding converted values) as JSON text, exact numbers as bare JSON numbers. */
export function eventsJson(value: unknown): string {
  return JSON.stringify(value).replace(RAW_NUMBER_JSON, '$1');
}

/** A type the conversion needs the source's catalog for, as pg_type and pg_attribute describe it. */
export interface SourceType {
  /** pg_type.typtype: b base (an array when `elem` is set), c composite, d domain, e enum, r range, m multirange. */
  kind: string;
  /** An array's element type (0 otherwise). */
  elem: number;
  /** The delimiter between an array's elements (the element type's typdelim: ';' for box). */
  delim: string;
  /** A domain's base type (0 otherwise). */
  base: number;
  /** A composite's fields in order, dropped ones left out (as its text leaves them out). */
  fields: { name: string; type: number }[];
}

export type TypeLookup = (oid: number) => SourceType | undefined;

/** Whether values of this type are converted without the source's catalog. */
export const convertsWithoutCatalog = (oid: number): boolean =>
  ARRAY_ELEMENTS.has(oid) ||
  oid === BOOL ||
  NUMBERS.has(oid) ||
  EXACT.has(oid) ||
  JSON_TYPES.has(oid) ||
  oid === TIMESTAMP ||
  oid === TIMESTAMPTZ ||
  TEXT_TYPES.has(oid);

/** Built-in array types → their element type (pg_type.typelem); all use ',' between elements. */
const ARRAY_ELEMENTS = new Map<number, number>([
  [1000, 16], // bool[]
  [1001, 17], // bytea[]
  [1002, 18], // char[]
  [1003, 19], // name[]
  [1005, 21], // int2[]
  [1007, 23], // int4[]
  [1009, 25], // text[]
  [1014, 1042], // bpchar[]
  [1015, 1043], // varchar[]
  [1016, 20], // int8[]
  [1021, 700], // float4[]
  [1022, 701], // float8[]
  [1028, 26], // oid[]
  [1115, 1114], // timestamp[]
  [1182, 1082], // date[]
  [1183, 1083], // time[]
  [1185, 1184], // timestamptz[]
  [1187, 1186], // interval[]
  [1231, 1700], // numeric[]
  [1270, 1266], // timetz[]
  [199, 114], // json[]
  [3807, 3802], // jsonb[]
  [2951, 2950], // uuid[]
  [1041, 869], // inet[]
  [651, 650], // cidr[]
]);

/**
 * One value. `types` describes the source's other types (without it, or for a type it does not know, the value
 * stays text); `nested`: inside a composite, a domain or an array of user types, where to_jsonb writes bigint and
 * numeric as numbers.
 */
export function pgTextValue(text: string | null, typeOid: number, types?: TypeLookup, nested = false): unknown {
  if (text === null) return null;
  const element = ARRAY_ELEMENTS.get(typeOid);
  if (element !== undefined) return mapArray(parseArray(text), (v) => pgTextValue(v, element, types, nested));
  if (EXACT.has(typeOid)) return nested && JSON_NUMBER.test(text) ? RAW_NUMBER + text : text;
  if (typeOid === BOOL) return text === 't';
  if (NUMBERS.has(typeOid)) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text; // NaN and ±Infinity stay strings, as to_jsonb writes them
  }
  if (JSON_TYPES.has(typeOid)) return JSON.parse(text) as unknown;
  if (typeOid === TIMESTAMP) return text.replace(' ', 'T');
  if (typeOid === TIMESTAMPTZ)
    return text
      .replace(' ', 'T')
      .replace(/([+-]\d\d)$/, '$1:00')
      .replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  const type = types?.(typeOid);
  if (!type) return text;
  if (type.kind === 'b' && type.elem)
    return mapArray(parseArray(text, type.delim), (v) => pgTextValue(v, type.elem, types, true));
  if (type.kind === 'd' && type.base) return pgTextValue(text, type.base, types, true);
  if (type.kind === 'c') {
    const values = parseRecord(text);
    // Another shape than the catalog's now (the type was altered after the row was written): left as its text.
    if (values.length !== type.fields.length) return text;
    return Object.fromEntries(type.fields.map((f, i) => [f.name, pgTextValue(values[i]!, f.type, types, true)]));
  }
  return text;
}
type TextArray = (string | null | TextArray)[];

function mapArray(a: TextArray, f: (v: string | null) => unknown): unknown[] {
  return a.map((v) => (Array.isArray(v) ? mapArray(v, f) : f(v)));
}

/**
 * PostgreSQL's array literal ({1,2}, {{"a b",NULL},{"\"q\"",c}}, [0:1]={x,y}) → nested arrays of element texts;
 * an unquoted NULL is null. Bounds other than 1 are dropped (to_jsonb drops them too).
 */
export function parseArray(text: string, delim = ','): TextArray {
  let i = 0;
  if (text[0] === '[') {
    i = text.indexOf('=') + 1;
    if (i === 0) throw new Error(`not an array literal: ${text.slice(0, 40)}`);
  }
  const parse = (): TextArray => {
    if (text[i] !== '{') throw new Error(`not an array literal at ${i}: ${text.slice(0, 40)}`);
    i++;
    const out: TextArray = [];
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === '{') out.push(parse());
      else if (text[i] === '"') {
        i++;
        let v = '';
        while (text[i] !== '"') {
          if (i >= text.length)
            throw new Error(`unterminated quoted element in an array literal: ${text.slice(0, 40)}`);
          if (text[i] === '\\') i++;
          v += text[i++];
        }
        i++;
        out.push(v);
      } else {
        const start = i;
        while (i < text.length && text[i] !== delim && text[i] !== '}') i++;
        const v = text.slice(start, i);
        out.push(v === 'NULL' ? null : v);
      }
      if (text[i] === delim) i++;
      else if (text[i] === '}') {
        i++;
        return out;
      } else throw new Error(`malformed array literal at ${i}: ${text.slice(0, 40)}`);
    }
  };
  return parse();
}

/**
 * PostgreSQL's record literal ((1,"a b",,"x ""q""")) → its fields' texts: an empty unquoted field is null, a
 * quoted empty one ("") the empty string; "" inside quotes is a quote, a backslash escapes the next character.
 */
export function parseRecord(text: string): (string | null)[] {
  if (text[0] !== '(') throw new Error(`not a record literal: ${text.slice(0, 40)}`);
  let i = 1;
  const out: (string | null)[] = [];
  for (;;) {
    if (text[i] === ',' || text[i] === ')') out.push(null);
    else {
      let v = '';
      let quoted = false;
      while (i < text.length && (quoted || (text[i] !== ',' && text[i] !== ')'))) {
        const c = text[i]!;
        if (c === '\\') {
          v += text[i + 1] ?? '';
          i += 2;
        } else if (c === '"') {
          if (quoted && text[i + 1] === '"') {
            v += '"';
            i += 2;
          } else {
            quoted = !quoted;
            i++;
          }
        } else {
          v += c;
          i++;
        }
      }
      out.push(v);
    }
    if (text[i] === ',') i++;
    else if (text[i] === ')') return out;
    else throw new Error(`malformed record literal at ${i}: ${text.slice(0, 40)}`);
  }
}

/*
 * PostgreSQL's text form of a value (as pgoutput sends it, with datestyle ISO) → the JSON the store's captures
 * write for it with to_jsonb: booleans and small numbers as JSON, bigint and numeric as strings (exact), json and
 * jsonb as the JSON value, timestamps in ISO 8601 with "T" and a full zone offset; arrays of the built-in types
 * as JSON arrays (nested for several dimensions) of their elements converted the same way. Everything else
 * (dates, intervals, uuids, bytea as "\x…", ranges, user types and arrays of them) stays PostgreSQL's text.
 */

const BOOL = 16;
const NUMBERS = new Set([21, 23, 26, 700, 701]); // int2, int4, oid, float4, float8
const JSON_TYPES = new Set([114, 3802]);
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;

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

export function pgTextValue(text: string | null, typeOid: number): unknown {
  if (text === null) return null;
  const element = ARRAY_ELEMENTS.get(typeOid);
  if (element !== undefined) return mapArray(parseArray(text), (v) => pgTextValue(v, element));
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
export function parseArray(text: string): TextArray {
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
        while (i < text.length && text[i] !== ',' && text[i] !== '}') i++;
        const v = text.slice(start, i);
        out.push(v === 'NULL' ? null : v);
      }
      if (text[i] === ',') i++;
      else if (text[i] === '}') {
        i++;
        return out;
      } else throw new Error(`malformed array literal at ${i}: ${text.slice(0, 40)}`);
    }
  };
  return parse();
}

/**
 * The awsQuery protocol as the SNS SDKs speak it: a form-encoded POST (`Action=Publish&Version=2010-03-31&…`, lists
 * as `X.member.N`, maps as `X.entry.N.key/value`) answered with XML (`<PublishResponse xmlns=…><PublishResult>…`)
 * or SNS's `<ErrorResponse>`. Pure: parsing and rendering only.
 */

export const SNS_XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

/** An SNS error: its code, HTTP status and Sender/Receiver fault, as the SDKs map them to exceptions. */
export class SnsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly type: 'Sender' | 'Receiver' = status >= 500 ? 'Receiver' : 'Sender',
  ) {
    super(message);
  }
}

export const invalidParameter = (message: string) => new SnsError('InvalidParameter', message, 400);
export const notFound = (message: string) => new SnsError('NotFound', message, 404);

/** A request's form fields, with the readers the operations need. */
export class QueryParams {
  private readonly fields: Map<string, string>;

  constructor(body: string) {
    this.fields = new Map(new URLSearchParams(body));
  }

  get(name: string): string | undefined {
    return this.fields.get(name);
  }

  /** A required parameter; SNS answers a missing one with InvalidParameter naming it. */
  required(name: string): string {
    const value = this.fields.get(name);
    if (value === undefined || value === '')
      throw invalidParameter(`Invalid parameter: ${name} is required (send ${name}=…)`);
    return value;
  }

  /** `prefix.member.1`, `prefix.member.2`, … in order, up to the first gap. */
  members(prefix: string): string[] {
    const out: string[] = [];
    for (let n = 1; this.fields.has(`${prefix}.member.${n}`); n++) out.push(this.fields.get(`${prefix}.member.${n}`)!);
    return out;
  }

  /** Prefixes of structured list members: `prefix.member.1`, … for which any `prefix.member.N.<field>` exists. */
  memberPrefixes(prefix: string): string[] {
    const out: string[] = [];
    for (let n = 1; this.hasPrefix(`${prefix}.member.${n}.`); n++) out.push(`${prefix}.member.${n}`);
    return out;
  }

  /** A string map: `prefix.entry.N.key` / `prefix.entry.N.value`. */
  entries(prefix: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (let n = 1; this.fields.has(`${prefix}.entry.${n}.key`); n++)
      out[this.fields.get(`${prefix}.entry.${n}.key`)!] = this.fields.get(`${prefix}.entry.${n}.value`) ?? '';
    return out;
  }

  /** MessageAttributes: `prefix.entry.N.Name` and `.Value.DataType`, `.Value.StringValue`, `.Value.BinaryValue`. */
  messageAttributes(prefix: string): MessageAttribute[] {
    const out: MessageAttribute[] = [];
    for (let n = 1; this.fields.has(`${prefix}.entry.${n}.Name`); n++) {
      const at = `${prefix}.entry.${n}`;
      out.push({
        name: this.fields.get(`${at}.Name`)!,
        dataType: this.fields.get(`${at}.Value.DataType`),
        stringValue: this.fields.get(`${at}.Value.StringValue`),
        binaryValue: this.fields.get(`${at}.Value.BinaryValue`),
      });
    }
    return out;
  }

  private hasPrefix(prefix: string): boolean {
    for (const key of this.fields.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }
}

export interface MessageAttribute {
  name: string;
  dataType: string | undefined;
  stringValue: string | undefined;
  /** Base64, as the query protocol carries blobs. */
  binaryValue: string | undefined;
}

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\r': '&#xD;',
};
export const xmlEscape = (value: string): string => value.replace(/[&<>"'\r]/g, (c) => XML_ESCAPES[c]!);

/** An XML element tree, written as nested objects: a string is text, an array repeats its tag as `<member>`. */
export type XmlValue = string | number | boolean | null | undefined | XmlValue[] | { [tag: string]: XmlValue };

export function toXml(value: XmlValue): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'object') return xmlEscape(String(value));
  if (Array.isArray(value)) return value.map((v) => `<member>${toXml(v)}</member>`).join('');
  return Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .map(([tag, v]) => `<${tag}>${toXml(v)}</${tag}>`)
    .join('');
}

/** A string map as `<entry><key>…</key><value>…</value></entry>`. */
export const xmlEntries = (map: Record<string, string>): string =>
  Object.entries(map)
    .map(([k, v]) => `<entry><key>${xmlEscape(k)}</key><value>${xmlEscape(v)}</value></entry>`)
    .join('');

/** `<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata><RequestId>…` (result XML already rendered). */
export function resultXml(action: string, resultInnerXml: string | null, requestId: string): string {
  const result = resultInnerXml === null ? '' : `<${action}Result>${resultInnerXml}</${action}Result>`;
  return `<?xml version="1.0"?>\n<${action}Response xmlns="${SNS_XMLNS}">${result}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>\n`;
}

export function errorXml(error: SnsError, requestId: string): string {
  return `<?xml version="1.0"?>\n<ErrorResponse xmlns="${SNS_XMLNS}"><Error><Type>${error.type}</Type><Code>${xmlEscape(error.code)}</Code><Message>${xmlEscape(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>\n`;
}

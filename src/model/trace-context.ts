/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/#traceparent-header): a traceparent is
 * "version-traceid-parentid-flags" in lowercase hex. Writers set it with `SET LOCAL rowcast.traceparent = '…'`;
 * whatever does not parse is dropped (as the spec asks of a receiver) rather than forwarded to subscribers.
 */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The traceparent if it is valid, normalised (trimmed; a future version's extra fields cut off); otherwise null. */
export function validTraceparent(value: string | null | undefined): string | null {
  if (!value) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === 'ff' || /^0+$/.test(traceId) || /^0+$/.test(parentId)) return null;
  // Version 00 has exactly four fields; later versions may append more, which a version-00 reader ignores.
  if (version === '00' && rest !== undefined) return null;
  return `${version}-${traceId}-${parentId}-${flags}`;
}

import ipaddr from 'ipaddr.js';

/**
 * Webhook URL safety: by default rowcast delivers only to public (globally routable unicast) addresses, so a
 * subscription cannot be pointed at the loopback interface, the private network, or the cloud metadata service
 * (169.254.169.254). The check is made on the address the socket actually connects to — after DNS resolution, in
 * the connector — so a hostname that resolves to an internal address is refused too, and DNS rebinding between a
 * check and the connect is not possible. `runtime.allowPrivateEndpoints: true` turns the check off.
 */

export interface AddressVerdict {
  /** The address in canonical form (IPv4-mapped IPv6 addresses as IPv4). */
  address: string;
  /** True for globally routable unicast addresses. */
  public: boolean;
  /** What the address is, e.g. "public", "loopback", "private (RFC 1918)", "link-local (cloud metadata)". */
  range: string;
}

const RANGE_NAMES: Record<string, string> = {
  unicast: 'public',
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link-local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier-grade NAT',
  private: 'private (RFC 1918)',
  reserved: 'reserved',
  benchmarking: 'benchmarking',
  amt: 'AMT relay',
  as112: 'AS112',
  as112v6: 'AS112',
  uniqueLocal: 'unique local (fc00::/7)',
  deprecatedSiteLocal: 'site-local',
  discard: 'discard-only',
  rfc6145: 'IPv4-translated',
  '6to4': '6to4',
  teredo: 'Teredo',
  orchid2: 'ORCHIDv2',
  deprecatedOrchid: 'ORCHID',
  droneRemoteIdProtocolEntityTags: 'DRIP',
  segmentRouting: 'segment routing',
};

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const NAT64_PREFIX = ipaddr.parseCIDR('64:ff9b::/96');

/** Classifies an IP address (ipaddr.js's special ranges). Anything that is not a valid address is not public. */
export function classifyAddress(input: string): AddressVerdict {
  const text = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  if (!ipaddr.isValid(text)) return { address: text, public: false, range: 'not an IP address' };
  // process(): IPv4-mapped IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1) becomes the IPv4 address it stands for.
  const addr = ipaddr.process(text);
  const address = addr.toString();
  if (addr.kind() === 'ipv4') {
    const range = addr.range();
    if (range === 'unicast') return { address, public: true, range: 'public' };
    const name = RANGE_NAMES[range] ?? range;
    return { address, public: false, range: address === '169.254.169.254' ? `${name} (cloud metadata)` : name };
  }
  const v6 = addr as ipaddr.IPv6;
  // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits: judge that one.
  if (v6.match(NAT64_PREFIX)) {
    const bytes = v6.toByteArray().slice(12);
    const inner = classifyAddress(ipaddr.fromByteArray(bytes).toString());
    return {
      address,
      public: inner.public,
      range: inner.public ? 'public' : `NAT64 of ${inner.address} (${inner.range})`,
    };
  }
  const range = v6.range();
  if (range === 'unicast' && v6.match(GLOBAL_UNICAST_V6)) return { address, public: true, range: 'public' };
  return { address, public: false, range: range === 'unicast' ? 'reserved' : (RANGE_NAMES[range] ?? range) };
}

/** A connection refused because its address is not public (retryable: DNS may change). */
export class PrivateEndpointError extends Error {
  readonly code = 'ERR_ROWCAST_PRIVATE_ENDPOINT';
  constructor(
    readonly verdict: AddressVerdict,
    readonly hostname?: string,
  ) {
    const via = hostname && hostname !== verdict.address ? `, resolved from ${hostname}` : '';
    super(
      `refused to connect to ${verdict.address} (${verdict.range}${via}): webhook endpoints must be public addresses; ` +
        'set runtime.allowPrivateEndpoints: true to allow internal ones',
    );
    this.name = 'PrivateEndpointError';
  }
}

/** The PrivateEndpointError in an error's cause chain, if any. */
export function findPrivateEndpointError(err: unknown): PrivateEndpointError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof PrivateEndpointError) return e;
  }
  return undefined;
}

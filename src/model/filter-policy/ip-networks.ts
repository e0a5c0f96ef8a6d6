/** CIDR conditions of filter policies: IPv4 and IPv6 networks, parsed and matched without I/O. */

export interface Network {
  version: 4 | 6;
  /** The address with the host bits cleared. */
  base: bigint;
  prefixLength: number;
}

export function parseCidr(text: string): Network | undefined {
  const parts = text.split('/');
  if (parts.length !== 2 || !/^\d{1,3}$/.test(parts[1]!)) return undefined;
  const address = parseIp(parts[0]!);
  const prefixLength = Number(parts[1]);
  if (!address || prefixLength > (address.version === 4 ? 32 : 128)) return undefined;
  return { version: address.version, base: mask(address.value, address.version, prefixLength), prefixLength };
}

export function inNetwork(network: Network, text: string): boolean {
  const address = parseIp(text);
  return (
    !!address &&
    address.version === network.version &&
    mask(address.value, address.version, network.prefixLength) === network.base
  );
}

export function mask(value: bigint, version: 4 | 6, prefixLength: number): bigint {
  const shift = BigInt((version === 4 ? 32 : 128) - prefixLength);
  return (value >> shift) << shift;
}

export function parseIp(text: string): { version: 4 | 6; value: bigint } | undefined {
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined ? undefined : { version: 6, value };
  }
  const value = parseIPv4(text);
  return value === undefined ? undefined : { version: 4, value };
}

export function parseIPv4(text: string): bigint | undefined {
  const octets = text.split('.');
  if (octets.length !== 4) return undefined;
  let value = 0n;
  for (const octet of octets) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(octet) || Number(octet) > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

export function parseIPv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece); // an embedded IPv4 address takes the last two groups
        if (v4 === undefined) return undefined;
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let value = 0n;
  for (const group of [...head, ...new Array<number>(missing).fill(0), ...tail]) value = (value << 16n) | BigInt(group);
  return value;
}

import dns from 'node:dns';
import net from 'node:net';
import { buildConnector } from 'undici';
import { classifyAddress, PrivateEndpointError } from './address-policy.js';

// The connector apart from the address checks: apply's warnings classify endpoints without loading undici.

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for net.connect that resolves as usual and keeps only public addresses (none: a PrivateEndpointError). */
export function publicOnlyLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, options.all ? [] : '');
    const allowed = addresses.filter((a) => classifyAddress(a.address).public);
    if (!allowed.length) {
      const first = addresses[0];
      const verdict = first
        ? classifyAddress(first.address)
        : { address: hostname, public: false, range: 'no address' };
      return callback(new PrivateEndpointError(verdict, hostname) as NodeJS.ErrnoException, options.all ? [] : '');
    }
    if (options.all) return callback(null, allowed);
    callback(null, allowed[0]!.address, allowed[0]!.family);
  });
}

/**
 * An undici connector that connects only to public addresses: IP literals are checked before connecting (net.connect
 * does not look them up), hostnames through publicOnlyLookup, and the socket's remote address once connected.
 */
export function publicOnlyConnector(options: buildConnector.BuildOptions = {}): buildConnector.connector {
  const connect = buildConnector({ ...options, lookup: publicOnlyLookup } as buildConnector.BuildOptions);
  return (opts, callback) => {
    const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    if (net.isIP(host)) {
      const verdict = classifyAddress(host);
      if (!verdict.public) {
        process.nextTick(() => callback(new PrivateEndpointError(verdict), null));
        return;
      }
    }
    connect(opts, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      const remote = socket.remoteAddress;
      const verdict = remote ? classifyAddress(remote) : undefined;
      if (verdict && !verdict.public) {
        socket.destroy();
        return callback(new PrivateEndpointError(verdict, host), null);
      }
      callback(null, socket);
    });
  };
}

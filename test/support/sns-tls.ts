/**
 * What a test needs to check SNS envelopes as SNS subscribers do, with the `sns-validator` package (0.3.5): it
 * fetches the SigningCertURL over https only, so rowcast's HTTP server is put behind a TLS proxy on loopback with a
 * test certificate this process trusts (https.globalAgent), and rowcast's publicUrl points at the proxy.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import {
  BasicConstraintsExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';

type Validator = {
  validate(body: string | object, cb: (err: Error | null, message?: Record<string, string>) => void): void;
};
const MessageValidator = createRequire(import.meta.url)('sns-validator') as new (hostPattern?: RegExp) => Validator;
// As issue 17 says: a host pattern that allows the port of the test's TLS proxy.
const validator = new MessageValidator(/^127\.0\.0\.1(:\d+)?$/);

/** sns-validator's verdict on an envelope (the parsed message, or its error). */
export const validateSnsMessage = (body: string | object) =>
  new Promise<Record<string, string>>((resolve, reject) =>
    validator.validate(body, (err, m) => (err ? reject(err) : resolve(m!))),
  );

/** A certificate for 127.0.0.1 that this process's https (the global agent sns-validator uses) trusts. */
export async function testTlsCertificate(): Promise<{ key: string; cert: string }> {
  const alg = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=127.0.0.1',
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: alg,
      keys,
      extensions: [
        new BasicConstraintsExtension(true, undefined, true),
        new SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
      ],
    },
    webcrypto as unknown as Crypto,
  );
  return {
    key: PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    cert: cert.toString('pem'),
  };
}

/** The TLS front of rowcast's HTTP server (as a load balancer would be); `upstream` is set once rowcast listens. */
export class TlsProxy {
  upstream = '';
  private constructor(
    private readonly server: https.Server,
    readonly url: string,
    /** The proxy's certificate (PEM), for verifiers outside this process (e.g. Python's ssl). */
    readonly cert: string,
  ) {}

  static async start(): Promise<TlsProxy> {
    const tls = await testTlsCertificate();
    https.globalAgent.options.ca = [tls.cert];
    let self: TlsProxy | null = null;
    const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      const up = httpRequest(`${self!.upstream}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new TlsProxy(server, `https://127.0.0.1:${(server.address() as AddressInfo).port}`, tls.cert);
    return self;
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** GET over https with the trusted test certificate, as a subscriber visits SubscribeURL and UnsubscribeURL. */
export function httpsGet(url: string): Promise<{ status: number; body: string; contentType: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body, contentType: String(res.headers['content-type']) }),
        );
      })
      .on('error', reject);
  });
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { SnsError } from './query-protocol.js';

/**
 * AWS Signature Version 4, verified: the request is signed again with the secret of the access key it names, by
 * the SDKs' own signer (@smithy/signature-v4), over exactly the headers it says it signed, and the signatures are
 * compared in constant time. Clock skew up to 15 minutes either way, as AWS allows.
 */

export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

export interface SignedRequest {
  method: string;
  /** The path, without the query string. */
  path: string;
  query: Record<string, string | string[]>;
  /** Header names in lower case (as node gives them). */
  headers: Record<string, string | string[] | undefined>;
  /** The bytes as received (the SNS API's form body; the Invoke API's payload). */
  body: string | Uint8Array;
}

const AUTH = /^AWS4-HMAC-SHA256 (.+)$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

const header = (req: SignedRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

/** The access key id of a correctly signed request; throws SNS's error otherwise. `secrets`: access key id → secret. */
export async function verifySigV4(
  req: SignedRequest,
  secrets: ReadonlyMap<string, string>,
  service: string,
  now = Date.now(),
): Promise<string> {
  const authorization = header(req, 'authorization');
  if (!authorization) {
    throw new SnsError(
      'MissingAuthenticationToken',
      'Request is missing Authentication Token: sign it with AWS Signature V4 (an AWS SDK with credentials from aws.credentials does).',
      403,
    );
  }
  const auth = AUTH.exec(authorization.trim());
  if (!auth)
    throw new SnsError(
      'IncompleteSignature',
      'The Authorization header is not AWS4-HMAC-SHA256 (AWS Signature V4 is the only scheme accepted).',
      400,
    );
  const parts = new Map(
    auth[1]!.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
    }),
  );
  const credential = parts.get('Credential');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    throw new SnsError(
      'IncompleteSignature',
      'The Authorization header must contain Credential, SignedHeaders and Signature.',
      400,
    );
  }
  const [accessKeyId, scopeDate, region, scopeService, terminator, ...rest] = credential.split('/');
  if (!accessKeyId || !scopeDate || !region || !scopeService || terminator !== 'aws4_request' || rest.length) {
    throw new SnsError(
      'IncompleteSignature',
      `Credential must be <access key id>/<yyyymmdd>/<region>/${service}/aws4_request.`,
      400,
    );
  }
  const secret = secrets.get(accessKeyId);
  if (secret === undefined)
    throw new SnsError(
      'InvalidClientTokenId',
      'The security token included in the request is invalid: the access key id is not in aws.credentials.',
      403,
    );

  const amzDate = header(req, 'x-amz-date');
  const d = amzDate ? AMZ_DATE.exec(amzDate) : null;
  if (!amzDate || !d)
    throw new SnsError('IncompleteSignature', 'The request must carry X-Amz-Date (yyyymmddThhmmssZ) and sign it.', 400);
  const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
  if (Math.abs(now - signingDate.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw new SnsError(
      'RequestExpired',
      `Request has expired: signed at ${amzDate}, more than 15 minutes from the server's time ${new Date(now).toISOString()}; check the client's clock.`,
      400,
    );
  }
  if (scopeDate !== amzDate.slice(0, 8))
    throw new SnsError(
      'SignatureDoesNotMatch',
      `Credential should be scoped to a valid date: ${amzDate.slice(0, 8)}, not ${scopeDate}.`,
      403,
    );
  if (scopeService !== service)
    throw new SnsError('SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'.`, 403);

  const names = signedHeaders.split(';');
  if (!names.includes('host')) throw new SnsError('IncompleteSignature', 'SignedHeaders must include host.', 400);
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = header(req, name);
    if (value === undefined)
      throw new SnsError('IncompleteSignature', `Header ${name} is in SignedHeaders but not in the request.`, 400);
    headers[name] = value;
  }
  // The signer trusts a given payload hash: it must be the body's.
  const payloadHash = headers['x-amz-content-sha256'];
  if (payloadHash !== undefined && payloadHash !== createHash('sha256').update(req.body).digest('hex')) {
    throw new SnsError('SignatureDoesNotMatch', 'X-Amz-Content-SHA256 is not the SHA-256 of the body.', 403);
  }

  // Loaded by the first signed request: a process that serves no AWS API does not hold the signer.
  const [{ Hash }, { SignatureV4 }] = await Promise.all([import('@smithy/hash-node'), import('@smithy/signature-v4')]);
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: secret, sessionToken: headers['x-amz-security-token'] },
    region,
    service,
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: true,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: headers.host!,
      path: req.path,
      query: req.query,
      headers,
      body: req.body,
    },
    { signingDate, signableHeaders: new Set(names), signingRegion: region, signingService: service },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(String(signed.headers.authorization ?? ''))?.[1] ?? '';
  const expectedHeaders = /SignedHeaders=([^,]+)/.exec(String(signed.headers.authorization ?? ''))?.[1] ?? '';
  // Hashed first: equal lengths, so neither the length nor a prefix of the expected signature leaks.
  const same = timingSafeEqual(
    createHash('sha256').update(expected).digest(),
    createHash('sha256').update(signature).digest(),
  );
  if (!same || expectedHeaders !== names.join(';')) {
    throw new SnsError(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
      403,
    );
  }
  return accessKeyId;
}

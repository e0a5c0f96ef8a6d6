import { randomBytes, webcrypto } from 'node:crypto';
import type { Pool, PoolClient } from '../../store/pool.js';
import { withTransaction } from '../../store/pool.js';

/**
 * The RSA keys that sign SNS envelopes, each with a self-signed X.509 certificate (made with @peculiar/x509 over
 * node's WebCrypto), kept in rowcast.sns_signing_keys so every process signs with the same key and any process
 * serves the certificate. The newest key signs; a rotation adds a key and keeps the old ones, so messages signed
 * before it (retries, messages in flight) still verify against the certificate they name.
 */

export interface SigningKey {
  /** 32 hex characters: the certificate's URL is <publicUrl>/SimpleNotificationService-<certId>.pem. */
  certId: string;
  privateKeyPem: string;
  certificatePem: string;
}

/** SNS's certificates are 2048-bit RSA. */
const ALGORITHM = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
} as const;
/** Validity of a certificate; rotate before it ends (rowcast never does it on its own). */
const VALID_YEARS = 10;

export const certificatePath = (certId: string): string => `/SimpleNotificationService-${certId}.pem`;

/** A new key pair and its self-signed certificate (not stored). */
export async function createSigningKey(now = new Date()): Promise<SigningKey> {
  // Loaded when a key is made (rarely): @peculiar/x509 needs the Reflect metadata polyfill installed first.
  await import('reflect-metadata');
  const { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, PemConverter, X509CertificateGenerator } =
    await import('@peculiar/x509');
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  const certId = randomBytes(16).toString('hex');
  const certificate = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      name: `CN=rowcast SNS signing key ${certId}`,
      // An hour back, for verifiers whose clock is a little behind.
      notBefore: new Date(now.getTime() - 3_600_000),
      notAfter,
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      ],
    },
    webcrypto as unknown as Crypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    certId,
    privateKeyPem: PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    certificatePem: certificate.toString('pem'),
  };
}

const LOCK = `SELECT pg_advisory_xact_lock(hashtext('rowcast.sns_signing_keys'))`;
const NEWEST = `SELECT cert_id, private_key, certificate FROM rowcast.sns_signing_keys ORDER BY created_at DESC, cert_id LIMIT 1`;

const toKey = (r: { cert_id: string; private_key: string; certificate: string }): SigningKey => ({
  certId: r.cert_id,
  privateKeyPem: r.private_key,
  certificatePem: r.certificate,
});

/** The key that signs now, made and stored on first need (one per installation, whichever process gets there first). */
export async function currentSigningKey(pool: Pool): Promise<SigningKey> {
  const existing = (await pool.query(NEWEST)).rows[0];
  if (existing) return toKey(existing);
  // Made outside the transaction (it takes a moment); dropped if another process stored one meanwhile.
  const made = await createSigningKey();
  return withTransaction(pool, async (client) => {
    await client.query(LOCK);
    const raced = (await client.query(NEWEST)).rows[0];
    if (raced) return toKey(raced);
    await insertKey(client, made);
    return made;
  });
}

/**
 * Makes a new signing key, which signs from now on in every process (they pick it up at their next reload of
 * subscriptions; until then they sign with the previous one, still valid). Old certificates stay served.
 */
export async function rotateSigningKey(pool: Pool): Promise<SigningKey> {
  const made = await createSigningKey();
  await withTransaction(pool, async (client) => {
    await client.query(LOCK);
    await insertKey(client, made);
    await client.query(`SELECT pg_notify('rowcast_config', '')`);
  });
  return made;
}

/** The PEM certificate of a key, current or retired, or null. */
export async function signingCertificate(pool: Pool, certId: string): Promise<string | null> {
  if (!/^[0-9a-f]{32}$/.test(certId)) return null;
  const { rows } = await pool.query<{ certificate: string }>(
    'SELECT certificate FROM rowcast.sns_signing_keys WHERE cert_id = $1',
    [certId],
  );
  return rows[0]?.certificate ?? null;
}

async function insertKey(client: PoolClient, key: SigningKey): Promise<void> {
  await client.query('INSERT INTO rowcast.sns_signing_keys (cert_id, private_key, certificate) VALUES ($1, $2, $3)', [
    key.certId,
    key.privateKeyPem,
    key.certificatePem,
  ]);
}

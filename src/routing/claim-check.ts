import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Pool } from '../store/pool.js';
import type { OutboundMessage } from '../model/sink.js';

/**
 * Claim checks for messages over their topic's size limit: subscribers receive a small JSON reference with a
 * signed, expiring link to the stored body instead of the body (the pattern of SNS's extended client with S3).
 * The HMAC key is shared by all processes of an installation through rowcast.keys.
 */
export class ClaimChecks {
  private constructor(
    private readonly key: Buffer,
    private readonly baseUrl: string | undefined,
  ) {}

  static async load(pool: Pool, baseUrl: string | undefined): Promise<ClaimChecks> {
    await pool.query(
      `INSERT INTO rowcast.keys (name, secret) VALUES ('claim-check', $1) ON CONFLICT (name) DO NOTHING`,
      [randomBytes(32).toString('base64url')],
    );
    const { rows } = await pool.query<{ secret: string }>(`SELECT secret FROM rowcast.keys WHERE name = 'claim-check'`);
    return new ClaimChecks(Buffer.from(rows[0]!.secret, 'base64url'), baseUrl?.replace(/\/+$/, ''));
  }

  private sign(messageId: string, expires: number): string {
    return createHmac('sha256', this.key).update(`${messageId}.${expires}`).digest('base64url');
  }

  /** True when the link's signature is ours and it has not expired. */
  verify(messageId: string, expires: string | undefined, signature: string | undefined, now = Date.now()): boolean {
    if (!expires || !signature || !/^\d+$/.test(expires) || Number(expires) < now) return false;
    const expected = Buffer.from(this.sign(messageId, Number(expires)));
    const given = Buffer.from(signature);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  /**
   * The message as a subscriber receives it when its body is too large: same id, subject and attributes (plus
   * rowcastClaimCheck), and a JSON body with the link, the size and the SHA-256 of the stored body.
   */
  reference(message: OutboundMessage, ttlMs: number, now = Date.now()): OutboundMessage {
    if (!this.baseUrl)
      throw new Error(
        'claim-check links need runtime.http (port, and publicUrl if subscribers reach rowcast at another address)',
      );
    const expires = now + ttlMs;
    const url = `${this.baseUrl}/messages/${encodeURIComponent(message.id)}/body?expires=${expires}&signature=${this.sign(message.id, expires)}`;
    const claimCheck = {
      url,
      expires: new Date(expires).toISOString(),
      size: Buffer.byteLength(message.body),
      sha256: createHash('sha256').update(message.body).digest('hex'),
      contentType: message.contentType,
    };
    return {
      ...message,
      body: JSON.stringify({ rowcastClaimCheck: claimCheck }),
      contentType: 'application/json',
      attributes: { ...message.attributes, rowcastClaimCheck: 'true' },
    };
  }
}

import { createHmac } from 'node:crypto';
import { Agent, errors as undiciErrors } from 'undici';
import { httpPost, type PostResponse, PostTimeoutError } from './http-post.js';
import { parseRetryAfter } from '../../../model/retry-policy.js';
import { findPrivateEndpointError } from './address-policy.js';
import { publicOnlyConnector } from './public-only-connector.js';
import { controlTypeOf } from '../../sns-envelope/confirmation.js';
import { type SnsEnvelopes, SNS_USER_AGENT } from '../../sns-envelope/sns-envelopes.js';
import { percentEncodeHeaderValue, type RenderedMessage, renderMessage } from '../../../model/message-format.js';
import { type AttemptExchange, redactHeaders } from '../../../model/attempt-log.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';

/** Where an endpoint's requests go; credentials in its URL become the Authorization header. */
interface Target {
  origin: string;
  path: string;
  authorization?: string;
}

const USER_AGENT = 'rowcast/0.1 (+https://github.com/rowcast/rowcast)';

/**
 * Webhooks over HTTP(S): a POST per delivery, signed per Standard Webhooks (webhook-id is the message id, the
 * same on every attempt), through a keep-alive connection pool. Redirects are not followed: a 3xx is a failure.
 * Unless allowPrivateEndpoints, connections go to public addresses only, checked on the address connected to (after
 * DNS resolution; see address-policy.ts and public-only-connector.ts); a refused one fails the attempt, retryably.
 */
export class HttpSink implements Sink {
  private readonly agent: Agent;
  private readonly signers = new Map<string, WebhookSigner>();
  private readonly targets = new Map<string, Target>();

  constructor(
    private readonly options: { allowPrivateEndpoints?: boolean; snsEnvelopes?: () => SnsEnvelopes | null } = {},
  ) {
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      connections: 256,
      pipelining: 1,
      ...(options.allowPrivateEndpoints ? {} : { connect: publicOnlyConnector() }),
    });
  }

  /** Renders format 'sns' (given by the runtime, as SNS envelopes name URLs of its HTTP server); none by default. */
  private get snsEnvelopes(): SnsEnvelopes | null {
    return this.options.snsEnvelopes?.() ?? null;
  }

  async send(
    { attempt, subscription, message, logSuccess = true }: DeliveryAttempt,
    signal: AbortSignal,
  ): Promise<SendOutcome> {
    const { deliveryPolicy, format, headers: extra } = subscription.settings;
    const sns = format === 'sns';
    // SNS's handshake messages exist only for SNS envelopes: after a change of format there is nothing to send.
    if (!sns && controlTypeOf(message.topic)) return { kind: 'done' };
    let rendered: RenderedMessage;
    try {
      if (sns && !this.snsEnvelopes) throw new Error('SNS envelopes are not available in this process');
      rendered = sns ? await this.snsEnvelopes!.render(subscription, message) : renderMessage(format, message);
    } catch (err) {
      return { kind: 'retry', error: `cannot render the message: ${(err as Error).message}` };
    }
    const body = rendered.body;
    const headers: Record<string, string> = {
      ...extra,
      // The ce-* attributes of binary CloudEvents, encoded as the CloudEvents HTTP binding requires.
      ...Object.fromEntries(
        Object.entries(rendered.headers).map(([name, value]) => [name, percentEncodeHeaderValue(value)]),
      ),
      'content-type': rendered.contentType,
      'user-agent': sns ? SNS_USER_AGENT : USER_AGENT,
      'webhook-id': message.id,
      'rowcast-subscription': subscription.name,
      'rowcast-topic': message.topic,
      'rowcast-attempt': String(attempt),
      // With rowcast-attempt, a receiver can tell the last attempt (counted per series: a redrive or resend starts at 1).
      'rowcast-max-attempts': String(deliveryPolicy.maxAttempts),
    };
    if (message.trace) headers.traceparent = message.trace;
    if (subscription.secret) {
      const now = new Date();
      headers['webhook-timestamp'] = String(Math.floor(now.getTime() / 1000));
      headers['webhook-signature'] = this.signer(subscription.secret).sign(message.id, now, body);
      // During a rotation's overlap a second signature, with the previous secret: Standard Webhooks receivers
      // accept a request if any of the space-separated signatures matches, whichever secret they hold.
      const previous = subscription.previousSecret;
      if (previous && previous.expiresAt.getTime() > now.getTime() && previous.secret !== subscription.secret) {
        headers['webhook-signature'] += ` ${this.signer(previous.secret).sign(message.id, now, body)}`;
      }
    }
    // What the attempt log keeps of the request, built only when kept: once the headers are complete (nothing when
    // the endpoint itself was invalid).
    let sent: AttemptExchange['request'] | undefined;
    let complete = false;
    const request = () => (sent ??= { headers: redactHeaders(headers, subscription.secretHeaders) });
    try {
      const target = this.target(subscription.endpoint);
      if (target.authorization && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
        headers.authorization = target.authorization;
      complete = true;
      const res = await httpPost(
        this.agent,
        target,
        { headers, body, timeoutMs: deliveryPolicy.timeout, signal },
        (status) => logSuccess || status < 200 || status >= 300,
      );
      const { status } = res;
      if (status >= 200 && status < 300)
        return logSuccess ? { kind: 'done', status, exchange: exchangeOf(request(), res) } : { kind: 'done', status };
      const exchange = exchangeOf(request(), res);
      const snippet = exchange.response!.body.slice(0, 300).replace(/\s+/g, ' ').trim();
      const error = `HTTP ${status}${snippet ? `: ${snippet}` : ''}`;
      if (status === 410)
        return { kind: 'disable', status, error: `${error} (the endpoint is gone; subscription disabled)`, exchange };
      if (status >= 300 && status < 400)
        return {
          kind: 'retry',
          status,
          error: `${error} (redirects are not followed; point the subscription at ${headerValue(res.headers!.location) ?? 'the new URL'})`,
          exchange,
        };
      const retryAfter =
        status === 429 || status === 503 ? parseRetryAfter(headerValue(res.headers!['retry-after'])) : undefined;
      return { kind: 'retry', status, error, retryAfterMs: retryAfter, exchange };
    } catch (err) {
      // No response: the log keeps what was sent.
      const exchange = complete ? { request: request() } : undefined;
      if (err instanceof PostTimeoutError) return { kind: 'retry', error: err.message, exchange };
      if (signal.aborted) return { kind: 'retry', error: 'aborted: rowcast is shutting down', exchange };
      const refused = findPrivateEndpointError(err);
      if (refused) return { kind: 'retry', error: refused.message, exchange };
      return { kind: 'retry', error: describeNetworkError(err), exchange };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /**
   * Credentials in the endpoint (https://user:password@host/…) become HTTP Basic authentication: undici would
   * silently drop them, and they must not travel in the URL either.
   */
  private target(endpoint: string): Target {
    let target = this.targets.get(endpoint);
    if (!target) {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw new Error(`${url.protocol} is not HTTP: the endpoint must be an http:// or https:// URL`);
      target = { origin: url.origin, path: `${url.pathname}${url.search}` };
      if (url.username || url.password) {
        const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
        target.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
      }
      if (this.targets.size >= 10_000) this.targets.clear();
      this.targets.set(endpoint, target);
    }
    return target;
  }

  private signer(secret: string): WebhookSigner {
    let signer = this.signers.get(secret);
    if (!signer) {
      // Rotations add secrets; retired ones need not stay in memory.
      if (this.signers.size >= 10_000) this.signers.clear();
      signer = new WebhookSigner(secret);
      this.signers.set(secret, signer);
    }
    return signer;
  }
}

/**
 * Standard Webhooks signing (v1: base64 HMAC-SHA256 of "id.timestamp.body" with the base64 key after "whsec_"),
 * as the standardwebhooks package signs, with node:crypto's native HMAC instead of its JavaScript SHA-256 — the
 * largest per-request cost of the sink. test/e2e/signatures.test.ts verifies it with the package's verifier.
 */
class WebhookSigner {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  }

  sign(id: string, at: Date, body: string): string {
    return `v1,${createHmac('sha256', this.key)
      .update(`${id}.${Math.floor(at.getTime() / 1000)}.${body}`)
      .digest('base64')}`;
  }
}

/** The attempt log's record of an exchange that got a response (with its headers and the start of its body). */
function exchangeOf(request: AttemptExchange['request'], res: PostResponse): AttemptExchange {
  return { request, response: { status: res.status, headers: redactHeaders(res.headers!), ...res.body! } };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError)
    return `timed out: ${e.message}`;
  const code = e.code ?? e.cause?.code;
  const message = e.cause?.message ?? e.message ?? String(err);
  return code ? `${code}: ${message}` : message;
}

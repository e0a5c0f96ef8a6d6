import { Redis } from 'ioredis';
import { redactUrl } from '../../../observability/redact.js';
import { contentTypeOf, renderBody } from '../../../model/message-format.js';
import { connectionKey, retry, sendOptions, SharedConnections, untilAborted } from '../broker-support.js';
import { renderTemplate, scrubSecret, urlPassword } from '../../../config/sink-settings/settings-support.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';
import { parseRedisOptions, resolveRedisUrl } from '../../../config/sink-settings/redis-settings.js';

interface Connection {
  client: Redis;
  /** The last connection-level error, for messages. */
  error: Error | null;
}

/**
 * Redis Streams: one XADD per delivery, done when Redis replies with the entry id. Fields of each entry: id (the
 * message id, the same on every attempt), topic, subject (absent when the message has none), attributes (JSON),
 * contentType, timestamp, trace (when set) and body (rendered per the subscription's format; binary CloudEvents
 * fall back to structured mode, as streams have no headers).
 *
 * Connections are opened on first use, one per distinct URL, and shared by every subscription that uses them.
 * The client neither queues commands while disconnected nor reconnects by itself: a lost connection fails the
 * sends in flight (retry) and the next send opens a new one.
 */
export class RedisSink implements Sink {
  private readonly connections = new SharedConnections<Connection>('redis', (connection) => connection.client.quit());

  async send({ subscription, message }: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome> {
    const settings = sendOptions('redis', parseRedisOptions(subscription.settings.options), (options) =>
      resolveRedisUrl(options.url),
    );
    if (!settings.ok) return settings.outcome;
    const { options, resolved: url } = settings;
    const { deliveryPolicy, format } = subscription.settings;
    const stream = renderTemplate(options.stream, message.topic);
    const where = `stream "${stream}" on ${redactUrl(url)}`;

    const args: Array<string | number> = [stream];
    if (options.maxLen !== undefined) args.push('MAXLEN', options.approximate ? '~' : '=', options.maxLen);
    args.push('*', 'id', message.id, 'topic', message.topic);
    if (message.subject !== null) args.push('subject', message.subject);
    args.push(
      'attributes',
      JSON.stringify(message.attributes),
      'contentType',
      contentTypeOf(format, message),
      'timestamp',
      message.timestamp,
    );
    if (message.trace) args.push('trace', message.trace);
    args.push('body', renderBody(format, message));

    return this.connections.send(
      deliveryPolicy.timeout,
      signal,
      () => this.connection(url, deliveryPolicy.timeout),
      async (connection, deadline) => {
        const entryId = await untilAborted(connection.client.call('XADD', ...args), deadline);
        if (typeof entryId !== 'string')
          return retry(`unexpected reply to XADD on ${where}: ${JSON.stringify(entryId)}`);
        return { kind: 'done' };
      },
      (err, timedOut, connection) => {
        const stage = connection ? 'publish' : 'connect';
        if (timedOut) {
          if (stage === 'connect')
            return `timed out after ${deliveryPolicy.timeout} ms connecting to Redis at ${redactUrl(url)}`;
          // An O(1) command without a reply: the connection is wedged; the next send opens a new one.
          connection?.client.disconnect();
          return `timed out after ${deliveryPolicy.timeout} ms waiting for Redis to reply to XADD (${where})`;
        }
        return describeError(err, stage, url, stream, connection?.error ?? null);
      },
    );
  }

  close(): Promise<void> {
    return this.connections.close();
  }

  private connection(url: string, timeout: number): Promise<Connection> {
    return this.connections.get(connectionKey(url), async (forget) => {
      const client = new Redis(url, {
        lazyConnect: true,
        connectionName: 'rowcast',
        connectTimeout: timeout,
        // Fail instead of waiting: no offline queue, no reconnect, no resend (the next send reconnects).
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        autoResendUnfulfilledCommands: false,
        keepAlive: 10_000,
      });
      const connection: Connection = { client, error: null };
      client.on('error', (err: Error) => {
        connection.error = err;
      });
      client.on('end', forget);
      // connectTimeout covers the TCP connect only; a server that accepts but never answers is given up here.
      const giveUp = setTimeout(() => client.disconnect(), timeout);
      try {
        await client.connect();
      } catch (err) {
        client.disconnect();
        throw connection.error ?? err;
      } finally {
        clearTimeout(giveUp);
      }
      if (this.connections.closed) client.disconnect();
      return connection;
    });
  }
}

function describeError(
  err: unknown,
  stage: 'connect' | 'publish',
  url: string,
  stream: string,
  connectionError: Error | null,
): string {
  const e = err as Error & { code?: string };
  const where = `stream "${stream}" on ${redactUrl(url)}`;
  let message = scrub(e.message ?? String(err), url);
  // ioredis reports a lost connection as "Connection is closed."; the socket error says why.
  if (/Connection is closed|Stream isn't writeable/.test(message) && connectionError)
    message = `${message} (${scrub(connectionError.message, url)})`;
  if (/^WRONGTYPE/.test(message))
    return `${message}: the key "${stream}" on ${redactUrl(url)} is not a stream; point options.stream elsewhere or delete the key`;
  if (/^(WRONGPASS|NOAUTH|NOPERM)/.test(message)) return `${message} (${stage === 'connect' ? redactUrl(url) : where})`;
  if (/^(OOM|READONLY|MISCONF|LOADING|BUSY|MASTERDOWN|CLUSTERDOWN)/.test(message))
    return `Redis refused XADD on ${where}: ${message}`;
  if (stage === 'connect')
    return `cannot connect to Redis at ${redactUrl(url)}: ${e.code && !message.includes(e.code) ? `${e.code}: ` : ''}${message}`;
  return `XADD on ${where} failed: ${message}`;
}

/** Removes the URL's password from a message, should a library have put it there. */
function scrub(text: string, url: string): string {
  return scrubSecret(text, urlPassword(url), 3);
}

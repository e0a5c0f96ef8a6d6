import { connect, type ChannelModel, type ConfirmChannel, type Message } from 'amqplib';
import { redactUrl } from '../../../observability/redact.js';
import { renderMessage } from '../../../model/message-format.js';
import { connectionKey, dead, openShared, sendOptions, SharedConnections, untilAborted } from '../broker-support.js';
import { renderTemplate, scrubSecret, urlPassword } from '../../../config/sink-settings/settings-support.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';
import { type AmqpOptions, parseAmqpOptions, resolveAmqpUrl } from '../../../config/sink-settings/amqp-settings.js';

/** Header of each published message naming the publish, so that a basic.return is matched to it. */
const PUBLISH_HEADER = 'rowcast-publish-id';

/** One confirm channel per exchange: a channel error (say, a missing exchange) closes only that exchange's channel. */
interface ExchangeChannel {
  channel: ConfirmChannel;
  /** Why the broker closed the channel, if it did. */
  error: Error | null;
  /** Publishes the broker returned as unroutable (mandatory), until their confirm arrives. */
  returned: Set<string>;
}

interface Connection {
  model: ChannelModel;
  error: Error | null;
  /** Set while the broker blocks publishers (a resource alarm), with its reason. */
  blocked: string | null;
  channels: Map<string, Promise<ExchangeChannel>>;
}

/**
 * AMQP 0-9-1 (RabbitMQ): one persistent publish per delivery on a confirm channel, done when the broker confirms
 * it. The message id is the AMQP message-id property (the same on every attempt, for consumers to deduplicate).
 *
 * Connections are opened on first use, one per distinct URL, and shared by every subscription that uses them. A
 * lost connection fails the publishes in flight (retry) and the next send opens a new one.
 */
export class AmqpSink implements Sink {
  private readonly connections = new SharedConnections<Connection>('amqp', (connection) => connection.model.close());
  private publishes = 0;

  async send(
    { deliveryId, attempt, subscription, message }: DeliveryAttempt,
    signal: AbortSignal,
  ): Promise<SendOutcome> {
    const settings = sendOptions('amqp', parseAmqpOptions(subscription.settings.options), (options) =>
      resolveAmqpUrl(options.url),
    );
    if (!settings.ok) return settings.outcome;
    const { options, resolved: url } = settings;
    const { deliveryPolicy, format, headers: extra } = subscription.settings;
    const routingKey = renderTemplate(options.routingKey, message.topic);
    if (Buffer.byteLength(routingKey) > 255)
      return dead(`invalid amqp options: options.routingKey: "${routingKey}" is longer than AMQP's 255 bytes`);
    const where = `exchange ${options.exchange ? `"${options.exchange}"` : '"" (the default exchange)'} on ${redactUrl(url)}`;
    const publishId = `${deliveryId}/${attempt}/${++this.publishes}`;
    const rendered = renderMessage(format, message);
    const headers: Record<string, string | number> = {
      ...extra,
      // cloudevents-binary: the CloudEvents attributes as "cloudEvents:" application properties (the AMQP binding).
      ...Object.fromEntries(
        Object.entries(rendered.headers).map(([name, value]) => [name.replace(/^ce-/, 'cloudEvents:'), value]),
      ),
      'rowcast-topic': message.topic,
      'rowcast-subscription': subscription.name,
      'rowcast-attempt': attempt,
      [PUBLISH_HEADER]: publishId,
    };
    if (message.subject !== null) headers['rowcast-subject'] = message.subject;
    if (message.trace) headers.traceparent = message.trace;

    // How far the send got once connected, for the error messages.
    let opened: 'channel' | 'publish' = 'channel';
    return this.connections.send(
      deliveryPolicy.timeout,
      signal,
      () => this.connection(url, deliveryPolicy.timeout),
      async (connection, deadline) => {
        const exchange = await untilAborted(this.channel(connection, options), deadline);
        opened = 'publish';
        const confirmed = new Promise<void>((resolve, reject) => {
          const onConfirm = (err: unknown) => {
            const returned = exchange.returned.delete(publishId);
            if (err) reject(exchange.error ?? connection.error ?? err);
            else if (returned) reject(new Unroutable());
            else resolve();
          };
          try {
            exchange.channel.publish(
              options.exchange,
              routingKey,
              Buffer.from(rendered.body),
              {
                persistent: true,
                mandatory: options.mandatory,
                messageId: message.id,
                contentType: rendered.contentType,
                timestamp: Math.floor(Date.parse(message.timestamp) / 1000) || undefined,
                appId: 'rowcast',
                headers,
              },
              onConfirm,
            );
          } catch (err) {
            exchange.returned.delete(publishId);
            reject(err);
          }
        });
        await untilAborted(confirmed, deadline);
        return { kind: 'done' };
      },
      (err, timedOut, connection) => {
        const stage: Stage = connection ? opened : 'connect';
        if (timedOut) {
          const blocked = connection?.blocked ? `; the broker blocks publishers: ${connection.blocked}` : '';
          const waiting = {
            connect: `connecting to the AMQP broker at ${redactUrl(url)}`,
            channel: `opening a channel for ${where}`,
            publish: `waiting for the broker to confirm the message (${where})`,
          }[stage];
          return `timed out after ${deliveryPolicy.timeout} ms ${waiting}${blocked}`;
        }
        if (err instanceof Unroutable) {
          const why = options.exchange
            ? `no queue is bound to ${where} for routing key "${routingKey}"`
            : `there is no queue named "${routingKey}" (the default exchange routes to the queue the routing key names) on ${redactUrl(url)}`;
          const fix = options.exchange ? 'bind a queue' : 'declare the queue';
          return `unroutable: ${why}, so the broker returned the message; ${fix}, or set mandatory: false to let the broker drop such messages`;
        }
        return describeError(err, stage, url, where);
      },
    );
  }

  close(): Promise<void> {
    return this.connections.close();
  }

  private connection(url: string, timeout: number): Promise<Connection> {
    return this.connections.get(connectionKey(url), async (forget) => {
      const model = await connect(withHeartbeat(url), { timeout, clientProperties: { connection_name: 'rowcast' } });
      const connection: Connection = { model, error: null, blocked: null, channels: new Map() };
      model.on('error', (err: Error) => {
        connection.error = err;
      });
      model.on('blocked', (reason: string) => {
        connection.blocked = reason || 'blocked';
      });
      model.on('unblocked', () => {
        connection.blocked = null;
      });
      model.on('close', forget);
      if (this.connections.closed) await model.close().catch(() => {});
      return connection;
    });
  }

  private channel(connection: Connection, options: AmqpOptions): Promise<ExchangeChannel> {
    const name = options.exchange;
    // Subscriptions that declare the exchange differently get channels of their own: the broker refuses the second.
    const key = options.assertExchange ? `${name}\0${options.exchangeType ?? 'topic'}` : name;
    return openShared(connection.channels, key, async (forget) => {
      const channel = await connection.model.createConfirmChannel();
      const state: ExchangeChannel = { channel, error: null, returned: new Set() };
      channel.on('error', (err: Error) => {
        state.error = err;
      });
      channel.on('close', forget);
      channel.on('return', (returned: Message) => {
        const id = (returned.properties.headers as Record<string, unknown> | undefined)?.[PUBLISH_HEADER];
        if (typeof id === 'string') state.returned.add(id);
      });
      if (options.assertExchange)
        await channel.assertExchange(name, options.exchangeType ?? 'topic', { durable: true });
      return state;
    });
  }
}

class Unroutable extends Error {}

/** Heartbeats every 15 s (unless the URL sets them), so that a dead broker is noticed within about 30 s. */
function withHeartbeat(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', '15');
  return u.toString();
}

type Stage = 'connect' | 'channel' | 'publish';

function describeError(err: unknown, stage: Stage, url: string, where: string): string {
  const e = err as Error & { code?: string | number };
  const message = scrubSecret(e.message ?? String(err), urlPassword(url), 1);
  if (/NOT_FOUND - no exchange/.test(message)) {
    return `${message}; declare the exchange, or set assertExchange: true to have rowcast declare it (${where})`;
  }
  if (/PRECONDITION_FAILED - inequivalent arg 'type'/.test(message)) {
    return `${message}; the exchange exists with another type: set exchangeType to its type (${where})`;
  }
  if (/ACCESS_REFUSED/.test(message)) return `${message} (${stage === 'connect' ? redactUrl(url) : where})`;
  if (stage === 'connect') {
    const code = typeof e.code === 'string' && !message.includes(e.code) ? `${e.code}: ` : '';
    return `cannot connect to the AMQP broker at ${redactUrl(url)}: ${code}${message}`;
  }
  return `${stage === 'channel' ? 'opening a channel for' : 'publishing to'} ${where} failed: ${message}`;
}

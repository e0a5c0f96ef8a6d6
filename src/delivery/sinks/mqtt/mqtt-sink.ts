import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { renderBody, renderMessage } from '../../../model/message-format.js';
import { connectionKey, sendOptions, SharedConnections, untilAborted } from '../broker-support.js';
import { renderTemplate, resolveSecret, scrubSecret } from '../../../config/sink-settings/settings-support.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';
import { type MqttOptions, parseMqttOptions } from '../../../config/sink-settings/mqtt-settings.js';

interface Connection {
  client: MqttClient;
  /** The last error of the connection, for messages. */
  error: Error | null;
}

/**
 * MQTT (3.1.1 or 5): one publish per delivery with QoS 1 (or 2), done when the broker's PUBACK (PUBCOMP) arrives.
 * With MQTT 5 the message id, topic and subject travel as user properties and the content type as the content type
 * property; with 3.1.1 there is only the payload (the envelope carries the id).
 *
 * Connections are opened on first use, one per distinct broker + credentials + protocol version, and shared by
 * every subscription that uses them; each has a random client id and a clean session. The client does not
 * reconnect by itself: a lost connection fails the publishes in flight (retry) and the next send opens a new one.
 */
export class MqttSink implements Sink {
  private readonly connections = new SharedConnections<Connection>('mqtt', (connection) =>
    connection.client.endAsync(),
  );

  async send({ attempt, subscription, message }: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome> {
    const settings = sendOptions('mqtt', parseMqttOptions(subscription.settings.options), (options) =>
      options.password === undefined ? undefined : resolveSecret(options.password, 'options.password'),
    );
    if (!settings.ok) return settings.outcome;
    const { options, resolved: password } = settings;
    const { deliveryPolicy, format, headers: extra } = subscription.settings;
    const topic = renderTemplate(options.topic, message.topic);
    const where = `topic "${topic}" on ${options.url}`;

    let body: string;
    const publish: IClientPublishOptions = { qos: options.qos, retain: options.retain };
    if (options.protocolVersion === 5) {
      // cloudevents-binary: the CloudEvents attributes as user properties, as the CloudEvents MQTT 5 binding has it.
      const rendered = renderMessage(format, message);
      body = rendered.body;
      const userProperties: Record<string, string> = {
        ...extra,
        ...Object.fromEntries(
          Object.entries(rendered.headers).map(([name, value]) => [name.replace(/^ce-/, ''), value]),
        ),
        'rowcast-message-id': message.id,
        'rowcast-topic': message.topic,
        'rowcast-subscription': subscription.name,
        'rowcast-attempt': String(attempt),
      };
      if (message.subject !== null) userProperties['rowcast-subject'] = message.subject;
      if (message.trace) userProperties.traceparent = message.trace;
      publish.properties = { contentType: rendered.contentType, payloadFormatIndicator: true, userProperties };
    } else {
      body = renderBody(format, message);
    }

    return this.connections.send(
      deliveryPolicy.timeout,
      signal,
      () => this.connection(options, password, deliveryPolicy.timeout),
      async (connection, deadline) => {
        await untilAborted(connection.client.publishAsync(topic, body, publish), deadline);
        return { kind: 'done' };
      },
      (err, timedOut, connection) => {
        const stage = connection ? 'publish' : 'connect';
        if (timedOut) {
          return stage === 'connect'
            ? `timed out after ${deliveryPolicy.timeout} ms connecting to the MQTT broker at ${options.url}`
            : `timed out after ${deliveryPolicy.timeout} ms waiting for the broker to acknowledge the message (${options.qos === 2 ? 'PUBCOMP' : 'PUBACK'}, ${where})`;
        }
        return scrubSecret(describeError(err, stage, options, where, connection?.error ?? null), password, 3);
      },
    );
  }

  close(): Promise<void> {
    return this.connections.close();
  }

  private connection(options: MqttOptions, password: string | undefined, timeout: number): Promise<Connection> {
    const key = connectionKey([
      options.url,
      options.username ?? null,
      password ?? null,
      options.protocolVersion,
      options.clientIdPrefix,
    ]);
    return this.connections.get(
      key,
      (forget) =>
        new Promise<Connection>((resolve, reject) => {
          const clientOptions: IClientOptions = {
            clientId: `${options.clientIdPrefix}${randomBytes(6).toString('hex')}`,
            protocolVersion: options.protocolVersion,
            clean: true,
            username: options.username,
            password,
            connectTimeout: timeout,
            // No reconnects behind rowcast's back (the next send reconnects); pings notice a dead broker within ~20 s.
            reconnectPeriod: 0,
            keepalive: 15,
            // Publish only while connected; never hold messages for a later connection.
            queueQoSZero: false,
          };
          const client = mqtt.connect(options.url, clientOptions);
          const connection: Connection = { client, error: null };
          let open = false;
          const giveUp = setTimeout(() => fail(new Error(`no CONNACK within ${timeout} ms`)), timeout);
          const fail = (err: Error) => {
            clearTimeout(giveUp);
            connection.error = err;
            if (!open) reject(err);
            forget();
            // Fails the publishes still waiting for their acknowledgement ("Connection closed").
            client.end(true);
          };
          client.on('connect', () => {
            clearTimeout(giveUp);
            open = true;
            if (this.connections.closed) client.end(true);
            resolve(connection);
          });
          client.on('error', (err: Error) => fail(err));
          client.on('disconnect', (packet) => {
            connection.error = new Error(
              `the broker disconnected rowcast${packet.reasonCode ? ` (reason code ${packet.reasonCode}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''})` : ''}`,
            );
          });
          client.on('close', () => fail(connection.error ?? new Error('connection closed')));
        }),
    );
  }
}

/** What to do about the PUBACK / PUBREC reason codes a broker sends most. */
const PUBACK_HINTS: Record<number, string> = {
  135: 'the broker does not allow this client to publish to the topic: check its ACL for the username',
  144: 'the broker does not accept this topic name',
  149: 'the message is larger than the broker accepts (its maximum packet size)',
  151: 'the broker limits the messages in flight per client: lower maxConcurrency, or use QoS 1',
};

function describeError(
  err: unknown,
  stage: 'connect' | 'publish',
  options: MqttOptions,
  where: string,
  connectionError: Error | null,
): string {
  const e = err as Error & { code?: string | number };
  let message = e.message ?? String(err);
  if (/^Connection closed$|client disconnecting/i.test(message) && connectionError)
    message = `${message} (${connectionError.message})`;
  if (stage === 'connect') {
    const code = typeof e.code === 'string' && !message.includes(e.code) ? `${e.code}: ` : '';
    return `cannot connect to the MQTT broker at ${options.url}: ${code}${message}`;
  }
  if (/^Publish error/.test(message)) {
    const hint = typeof e.code === 'number' ? PUBACK_HINTS[e.code] : undefined;
    return `the broker refused the message on ${where}: ${message.replace(/^Publish error: /, '')}${typeof e.code === 'number' ? ` (reason code ${e.code})` : ''}${hint ? `; ${hint}` : ''}`;
  }
  return `publishing to ${where} failed: ${message}`;
}

import { readFile } from 'node:fs/promises';
import {
  connect,
  credsAuthenticator,
  headers as natsHeaders,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { jetstream, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { renderMessage } from '../../../model/message-format.js';
import { connectionKey, dead, sendOptions, SharedConnections, untilAborted } from '../broker-support.js';
import { renderTemplate, resolveSecret } from '../../../config/sink-settings/settings-support.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';
import { type NatsOptions, parseNatsOptions } from '../../../config/sink-settings/nats-settings.js';

interface Connection {
  nc: NatsConnection;
  js: JetStreamClient;
}

/**
 * NATS JetStream: one publish per delivery, done when the stream's PubAck arrives. `Nats-Msg-Id` is the message id
 * (the same on every attempt), so a retry after a lost PubAck is deduplicated by the stream within its duplicate
 * window (2 minutes by default).
 *
 * Connections are opened on first use, one per distinct server list + credentials, and shared by every
 * subscription that uses them. The client does not reconnect by itself: a lost connection fails the sends in
 * flight (retry) and the next send opens a new one, so nothing is buffered and published behind rowcast's back.
 */
export class NatsSink implements Sink {
  private readonly connections = new SharedConnections<Connection>('nats', (connection) => connection.nc.close());

  async send({ attempt, subscription, message }: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome> {
    const settings = sendOptions('nats', parseNatsOptions(subscription.settings.options), connectionTarget);
    if (!settings.ok) return settings.outcome;
    const { options, resolved: target } = settings;
    const { deliveryPolicy, format, headers: extra } = subscription.settings;
    const subject = renderTemplate(options.subject, message.topic);
    const servers = serverList(options);

    // cloudevents-binary puts the CloudEvents attributes in ce-* headers, as the CloudEvents NATS binding has it.
    const rendered = renderMessage(format, message);
    const headers = natsHeaders();
    for (const [name, value] of Object.entries({ ...extra, ...rendered.headers })) {
      try {
        headers.set(name, headerValue(value));
      } catch (err) {
        return dead(`invalid header ${JSON.stringify(name)} for NATS: ${(err as Error).message}`);
      }
    }
    headers.set('Content-Type', rendered.contentType);
    headers.set('Rowcast-Message-Id', message.id);
    headers.set('Rowcast-Topic', message.topic);
    if (message.subject !== null) headers.set('Rowcast-Subject', headerValue(message.subject));
    headers.set('Rowcast-Subscription', subscription.name);
    headers.set('Rowcast-Attempt', String(attempt));
    headers.set('Rowcast-Timestamp', message.timestamp);
    if (message.trace) headers.set('traceparent', headerValue(message.trace));

    const started = Date.now();
    return this.connections.send(
      deliveryPolicy.timeout,
      signal,
      () => this.connection(target, deliveryPolicy.timeout),
      async ({ js }, deadline) => {
        const remaining = Math.max(1, deliveryPolicy.timeout - (Date.now() - started));
        await untilAborted(
          js.publish(subject, rendered.body, { msgID: message.id, headers, timeout: remaining }),
          deadline,
        );
        // A duplicate PubAck (the stream already had this id) is a success too: the message is in the stream.
        return { kind: 'done' };
      },
      (err, timedOut, connection) => {
        const stage = connection ? 'publish' : 'connect';
        if (timedOut || isTimeout(err)) {
          return stage === 'connect'
            ? `timed out after ${deliveryPolicy.timeout} ms connecting to NATS at ${servers}`
            : `timed out after ${deliveryPolicy.timeout} ms waiting for JetStream to acknowledge the message on subject "${subject}" (${servers})`;
        }
        return describeError(err, stage, subject, servers);
      },
    );
  }

  close(): Promise<void> {
    return this.connections.close();
  }

  private connection(target: Target, timeout: number): Promise<Connection> {
    return this.connections.get(target.key, async (forget) => {
      const options: ConnectionOptions = { ...target.options };
      if (target.credsFile) {
        let creds: Uint8Array;
        try {
          creds = await readFile(target.credsFile);
        } catch (err) {
          throw new Error(`cannot read options.credentials.credsFile: ${(err as Error).message}`, { cause: err });
        }
        options.authenticator = credsAuthenticator(creds);
      }
      const nc = await connect({
        ...options,
        timeout,
        reconnect: false,
        // A dead peer (no RST) is noticed after two unanswered pings.
        pingInterval: 10_000,
        maxPingOut: 2,
      });
      void nc.closed().then(forget);
      if (this.connections.closed) await nc.close().catch(() => {});
      return { nc, js: jetstream(nc) };
    });
  }
}

interface Target {
  /** Connections are shared by equal settings; the key is a hash, so no secret is kept in it. */
  key: string;
  options: ConnectionOptions;
  credsFile?: string;
}

/** The connection settings of a subscription, secrets read from the environment (an unset variable throws). */
function connectionTarget(options: NatsOptions): Target {
  const result: ConnectionOptions = { servers: options.servers, name: 'rowcast' };
  if (options.tls) result.tls = {};
  const credentials = options.credentials;
  let credsFile: string | undefined;
  if (credentials && 'user' in credentials) {
    result.user = credentials.user;
    result.pass = resolveSecret(credentials.password, 'options.credentials.password');
  } else if (credentials && 'token' in credentials) {
    result.token = resolveSecret(credentials.token, 'options.credentials.token');
  } else if (credentials && 'credsFile' in credentials) {
    credsFile = credentials.credsFile;
  }
  return { key: connectionKey([result, credsFile ?? null]), options: result, credsFile };
}

function serverList(options: NatsOptions): string {
  return Array.isArray(options.servers) ? options.servers.join(', ') : options.servers;
}

/** Header values are single lines. */
function headerValue(value: string): string {
  return value.replace(/[\r\n]+/g, ' ');
}

function isTimeout(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'TimeoutError';
}

function describeError(err: unknown, stage: 'connect' | 'publish', subject: string, servers: string): string {
  const e = err as Error & { code?: string | number; cause?: { code?: string; message?: string } };
  if (e.name === 'JetStreamNotEnabled' || /no responders/i.test(e.message)) {
    return `no JetStream stream captures subject "${subject}" (or JetStream is not enabled on ${servers}); create a stream for it, e.g. \`nats stream add ROWCAST --subjects "${subject}"\``;
  }
  if (err instanceof JetStreamApiError)
    return `JetStream rejected the message on subject "${subject}": ${e.message} (error ${e.code})`;
  const code = e.cause?.code ?? (typeof e.code === 'string' ? e.code : undefined);
  const detail = e.cause?.message && e.cause.message !== e.message ? `${e.message}: ${e.cause.message}` : e.message;
  const where =
    stage === 'connect' ? `cannot connect to NATS at ${servers}` : `publishing to "${subject}" on ${servers} failed`;
  return `${where}: ${code && !detail.includes(code) ? `${code}: ` : ''}${detail}`;
}

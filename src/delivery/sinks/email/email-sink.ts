import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { NodemailerError, SMTPPoolOptions, SMTPPoolSentMessageInfo, Transporter } from 'nodemailer';
import { controlTypeOf } from '../../sns-envelope/confirmation.js';
import type { SnsEnvelopes } from '../../sns-envelope/sns-envelopes.js';
import { renderBody } from '../../../model/message-format.js';
import type { DeliveryAttempt, OutboundMessage, SendOutcome, Sink, Subscription } from '../../../model/sink.js';
import {
  describeEmailOptionsError,
  emailOptionsSchema,
  type EmailOptions,
  type SmtpSettings,
} from '../../../config/sink-settings/email-settings.js';

type Pool = Transporter<SMTPPoolSentMessageInfo, SMTPPoolOptions>;

/** SMTP commands whose 5xx reply refuses this message for good; a 5xx elsewhere (greeting, EHLO, AUTH) is the server's or the config's. */
const MESSAGE_COMMANDS = new Set(['MAIL FROM', 'RCPT TO', 'DATA']);

/**
 * `email` (a readable text mail) and `email-json` (the envelope JSON as the text) through an SMTP server, over one
 * pooled transport per distinct SMTP settings, created on first use. The Message-ID and Date headers come from
 * the message and the subscription, so a redelivery is the same mail and mail clients can drop the duplicate.
 * Outcomes: 2xx accepted → done; 4xx → retry; 5xx to MAIL FROM, to every RCPT TO, or to DATA → dead; network
 * failures, timeouts, TLS and authentication failures → retry (fixing the server or the credentials lets the
 * pending deliveries through). Recipients refused while others were accepted do not fail the delivery.
 */
export class EmailSink implements Sink {
  private readonly transports = new Map<string, Pool>();
  /** @param envelopes renders format 'sns' (SNS's mails; given by the runtime, as they link to its HTTP server). */
  constructor(private readonly envelopes: () => SnsEnvelopes | null = () => null) {}

  private get snsEnvelopes(): SnsEnvelopes | null {
    return this.envelopes();
  }

  async send({ attempt, subscription, message }: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome> {
    if (subscription.protocol !== 'email' && subscription.protocol !== 'email-json') {
      return { kind: 'dead', error: `the email sink cannot deliver protocol "${subscription.protocol}"` };
    }
    const parsed = emailOptionsSchema.safeParse(subscription.settings.options);
    if (!parsed.success) {
      return {
        kind: 'dead',
        error: `subscription ${subscription.name}: invalid ${subscription.protocol} options: ${describeEmailOptionsError(parsed.error, 'options')}`,
      };
    }
    const options = parsed.data;
    const pass = resolvePassword(options.smtp);
    if (pass instanceof Error) return { kind: 'retry', error: pass.message };
    if (signal.aborted) return { kind: 'retry', error: 'aborted: rowcast is shutting down' };

    let sns: { subject: string; text: string } | undefined;
    if (subscription.settings.format === 'sns') {
      try {
        if (!this.snsEnvelopes) throw new Error('SNS envelopes are not available in this process');
        sns = await this.snsEnvelopes.renderEmail(subscription, message);
      } catch (err) {
        return { kind: 'retry', error: `cannot render the message: ${(err as Error).message}` };
      }
    } else if (controlTypeOf(message.topic)) return { kind: 'done' }; // SNS's handshake, after a change of format: nothing to send
    const { timeout } = subscription.settings.deliveryPolicy;
    const server = `${options.smtp.host}:${options.smtp.port}`;
    const deadline = AbortSignal.timeout(timeout);
    try {
      const info = await this.transport(options.smtp, pass, timeout).sendMail({
        ...composeMail(subscription, message, options, attempt, sns),
        signal: AbortSignal.any([signal, deadline]),
      });
      return { kind: 'done', status: replyCode(info.response) ?? 250 };
    } catch (err) {
      if (deadline.aborted)
        return { kind: 'retry', error: `timed out after ${timeout} ms sending to SMTP server ${server}` };
      if (signal.aborted) return { kind: 'retry', error: 'aborted: rowcast is shutting down' };
      return redactOutcome(classify(err as NodemailerError, server, options), options.smtp.auth?.user, pass);
    }
  }

  async close(): Promise<void> {
    for (const transport of this.transports.values()) transport.close();
    this.transports.clear();
  }

  private transport(smtp: SmtpSettings, pass: string | undefined, timeout: number): Pool {
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          smtp.host,
          smtp.port,
          smtp.secure,
          smtp.requireTLS ?? false,
          smtp.auth?.user ?? null,
          pass ?? null,
          timeout,
        ]),
      )
      .digest('base64url');
    let transport = this.transports.get(key);
    if (!transport) {
      transport = nodemailer.createTransport({
        pool: true,
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        requireTLS: smtp.requireTLS,
        auth: smtp.auth && pass !== undefined ? { user: smtp.auth.user, pass } : undefined,
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: timeout,
        dnsTimeout: timeout,
        // A dropped connection fails the attempt; rowcast's retry policy (with its backoff) decides what next.
        maxRequeues: 0,
        maxConnections: 5,
        disableFileAccess: true,
        disableUrlAccess: true,
        logger: false,
      });
      // An idle pooled connection that fails is dropped by the pool; nothing to report until the next send.
      transport.on('error', () => {});
      this.transports.set(key, transport);
    }
    return transport;
  }
}

function resolvePassword(smtp: SmtpSettings): string | undefined | Error {
  const pass = smtp.auth?.pass;
  if (pass === undefined || typeof pass === 'string') return pass;
  const value = process.env[pass.env];
  if (value === undefined || value === '') {
    return new Error(
      `options.smtp.auth.pass: environment variable ${pass.env} is not set in the delivering process; set it to the SMTP password and restart rowcast`,
    );
  }
  return value;
}

/** `sns`: SNS's subject and text for format 'sns' (SnsEnvelopes.renderEmail). */
function composeMail(
  subscription: Subscription,
  message: OutboundMessage,
  options: EmailOptions,
  attempt: number,
  sns?: { subject: string; text: string },
) {
  const subject = sns ? prefixed(sns.subject, options.subjectPrefix) : subjectOf(message, options.subjectPrefix);
  const date = new Date(message.timestamp);
  return {
    from: options.from,
    to: options.to,
    replyTo: options.replyTo,
    subject,
    // Stable across attempts: a redelivery is recognisably the same mail.
    messageId: `<${message.id}.${subscription.name}@rowcast>`,
    date: Number.isNaN(date.getTime()) ? undefined : date,
    headers: {
      'X-Rowcast-Message-Id': message.id,
      'X-Rowcast-Topic': message.topic,
      'X-Rowcast-Subscription': subscription.name,
      'X-Rowcast-Attempt': String(attempt),
      // RFC 3834: machine-generated; keeps vacation responders from answering.
      'Auto-Submitted': 'auto-generated',
    },
    text: sns
      ? sns.text
      : subscription.protocol === 'email-json'
        ? renderBody('envelope', message)
        : readableBody(subscription, message),
  };
}

function subjectOf(message: OutboundMessage, prefix: string | undefined): string {
  return prefixed((message.subject ?? '').replace(/\s+/g, ' ').trim() || `rowcast: ${message.topic}`, prefix);
}

function prefixed(subject: string, prefix: string | undefined): string {
  if (!prefix) return subject;
  return /\s$/.test(prefix) ? `${prefix}${subject}` : `${prefix} ${subject}`;
}

function readableBody(subscription: Subscription, message: OutboundMessage): string {
  const lines = [
    subjectOf(message, undefined),
    '',
    `Topic:        ${message.topic}`,
    `Subscription: ${subscription.name}`,
    `Message id:   ${message.id}`,
    `Published:    ${message.timestamp}`,
  ];
  if (message.trace) lines.push(`Trace:        ${message.trace}`);
  const attributes = Object.entries(message.attributes);
  if (attributes.length) {
    lines.push('', 'Attributes:');
    for (const [name, value] of attributes) lines.push(`  ${name}: ${value}`);
  }
  const pretty = prettyJson(message.body);
  lines.push('', pretty === undefined ? `Message (${message.contentType}):` : 'Message:', pretty ?? message.body);
  lines.push('', 'Raw message (rowcast envelope JSON):', renderBody('envelope', message), '');
  return lines.join('\n');
}

/**
 * Re-indents JSON text without parsing it into numbers, so a bigint or numeric value keeps every digit (as in
 * the envelope). undefined when the text is not JSON.
 */
export function prettyJson(text: string): string | undefined {
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  let out = '';
  let depth = 0;
  const newline = () => `\n${'  '.repeat(depth)}`;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === '{' || c === '[') {
      let k = i + 1;
      while (' \t\r\n'.includes(text[k]!)) k++;
      if (text[k] === '}' || text[k] === ']') {
        out += c + text[k];
        i = k;
      } else {
        depth++;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out += newline() + c;
    } else if (c === ',') {
      out += `,${newline()}`;
    } else if (c === ':') {
      out += ': ';
    } else if (!' \t\r\n'.includes(c)) {
      out += c;
    }
  }
  return out;
}

function classify(err: NodemailerError, server: string, options: EmailOptions): SendOutcome {
  const code = err.responseCode;
  const reply = oneLine(err.response ?? err.message);
  if (err.code === 'EAUTH') {
    const user = options.smtp.auth?.user;
    return {
      kind: 'retry',
      status: code,
      error: `SMTP authentication${user ? ` as ${JSON.stringify(user)}` : ''} failed at ${server}: ${reply}; check options.smtp.auth (user and pass)`,
    };
  }
  if (code !== undefined && code >= 200) {
    const command = err.command ? ` to ${err.command}` : '';
    const rejected = err.rejected?.length ? ` (recipients: ${err.rejected.join(', ')})` : '';
    const error = `SMTP ${code}${command} from ${server}: ${reply}${rejected}`;
    const permanent = (err.permanent ?? (code >= 500 && code !== 503)) && MESSAGE_COMMANDS.has(err.command ?? '');
    if (permanent) return { kind: 'dead', status: code, error: `${error} (permanent failure; not retried)` };
    return { kind: 'retry', status: code, error };
  }
  if (err.code === 'ETIMEDOUT')
    return {
      kind: 'retry',
      error: `timed out talking to SMTP server ${server}${err.timeoutType ? ` (${err.timeoutType})` : ''}: ${oneLine(err.message)}`,
    };
  if (err.code === 'ECONNECTION') {
    const detail = /closed unexpectedly/i.test(err.message) ? '' : `: ${oneLine(err.message)}`;
    return { kind: 'retry', error: `the connection to SMTP server ${server} closed unexpectedly${detail}` };
  }
  if (err.code === 'ETLS' || err.code === 'EREQUIRETLS')
    return { kind: 'retry', error: `TLS with SMTP server ${server} failed: ${oneLine(err.message)}` };
  const codes = [err.code, err.originalCode].filter((c, i, all) => c && all.indexOf(c) === i).join('/');
  return {
    kind: 'retry',
    error: `sending to SMTP server ${server} failed: ${codes ? `${codes}: ` : ''}${oneLine(err.message)}`,
  };
}

function replyCode(response: string | undefined): number | undefined {
  const m = /^(\d{3})/.exec(response ?? '');
  return m ? Number(m[1]) : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 500);
}

/** The password never reaches an error text: neither as written nor in the base64 forms AUTH sends it in. */
function redactOutcome(outcome: SendOutcome, user: string | undefined, pass: string | undefined): SendOutcome {
  if (!pass || !('error' in outcome)) return outcome;
  let error = outcome.error;
  const forms = [
    pass,
    Buffer.from(pass).toString('base64'),
    Buffer.from(`\0${user ?? ''}\0${pass}`).toString('base64'),
  ];
  for (const form of forms) error = error.split(form).join('***');
  return { ...outcome, error };
}

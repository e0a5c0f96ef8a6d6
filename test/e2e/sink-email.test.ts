/**
 * The email sink against a real SMTP server (smtp-server) listening on 127.0.0.1 in this process: what arrives,
 * and how SMTP replies, dropped connections, timeouts and AUTH map onto delivery outcomes.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { deliveryPolicySchema } from '../../src/config/subscription-schema.js';
import { renderBody } from '../../src/model/message-format.js';
import { EmailSink, prettyJson } from '../../src/delivery/sinks/email/email-sink.js';
import type { EmailOptionsInput } from '../../src/config/sink-settings/email-settings.js';
import type { OutboundMessage } from '../../src/index.js';
import type { DeliveryAttempt } from '../../src/model/sink.js';

const USER = 'rowcast';
const PASSWORD = 'c0rrect-h0rse-battery';
const PASSWORD_ENV = 'ROWCAST_TEST_SMTP_PASSWORD';

interface Received {
  from: string;
  to: string[];
  user: unknown;
  raw: Buffer;
}

/** Recipients whose local part tells the server how to misbehave. */
function rcptReply(address: string): { code: number; text: string } | undefined {
  if (address.startsWith('defer')) return { code: 451, text: '4.3.0 Try again later (greylisted)' };
  if (address.startsWith('nobody')) return { code: 550, text: '5.1.1 Mailbox unavailable' };
  return undefined;
}

function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

let server: SMTPServer;
let port: number;
const received: Received[] = [];
const sockets = new Map<number, net.Socket>();
let sessions = 0;

before(async () => {
  server = new SMTPServer({
    name: 'smtp.test',
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disableReverseLookup: true,
    logger: false,
    onConnect(_session, callback) {
      sessions++;
      callback();
    },
    onAuth(auth, _session, callback) {
      if (auth.username === USER && auth.password === PASSWORD) return callback(null, { user: auth.username });
      callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
    },
    onRcptTo(address, _session, callback) {
      const reply = rcptReply(address.address);
      callback(reply ? smtpError(reply.code, reply.text) : null);
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((a) => a.address);
        if (to.some((a) => a.startsWith('drop'))) {
          // The connection dies in the middle of the transaction.
          sockets.get(session.remotePort)?.destroy();
          return;
        }
        if (to.some((a) => a.startsWith('datadefer')))
          return callback(smtpError(452, '4.3.1 Insufficient system storage'));
        if (to.some((a) => a.startsWith('datareject')))
          return callback(smtpError(554, '5.7.1 Message rejected as spam'));
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to,
          user: session.user,
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  server.server.on('connection', (socket: net.Socket) => {
    const remotePort = socket.remotePort!;
    sockets.set(remotePort, socket);
    socket.on('close', () => sockets.delete(remotePort));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as net.AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let nextId = 1000;

function message(overrides: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: String(nextId++),
    topic: 'orders',
    subject: 'Order 42 created',
    body: '{"order_id":12345678901234567890,"customer":"Ada","lines":[{"sku":"A-1","qty":2}],"tags":[],"meta":{}}',
    contentType: 'application/json',
    attributes: { op: 'INSERT', table: 'public.orders' },
    timestamp: '2025-03-01T12:00:00.000Z',
    trace: null,
    ...overrides,
  };
}

function smtp(extra: Partial<NonNullable<EmailOptionsInput['smtp']>> = {}): EmailOptionsInput['smtp'] {
  return { host: '127.0.0.1', port, ...extra };
}

function attempt(
  options: unknown,
  opts: { protocol?: string; name?: string; msg?: OutboundMessage; attempt?: number; timeout?: number } = {},
): DeliveryAttempt {
  return {
    deliveryId: String(nextId++),
    attempt: opts.attempt ?? 1,
    subscription: {
      name: opts.name ?? 'ops-mail',
      topic: 'orders',
      protocol: opts.protocol ?? 'email',
      endpoint: '',
      settings: {
        format: 'envelope',
        headers: {},
        deliveryPolicy: deliveryPolicySchema.parse({ timeout: opts.timeout ?? 5000 }),
        maxConcurrency: 4,
        options,
      },
      secret: null,
      state: 'active',
      deadLetterTopic: null,
    },
    message: opts.msg ?? message(),
  };
}

const live = () => new AbortController().signal;

async function lastReceived(to: string): Promise<{ mail: ParsedMail; envelope: Received }> {
  const envelope = [...received].reverse().find((r) => r.to.includes(to));
  assert.ok(envelope, `nothing arrived for ${to}`);
  return { mail: await simpleParser(envelope.raw), envelope };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port: p } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return p;
}

describe('email sink', () => {
  const sink = new EmailSink();
  after(() => sink.close());

  test('email: delivered with the subject, a readable body and the raw JSON', async () => {
    const msg = message();
    const outcome = await sink.send(
      attempt(
        {
          to: 'ops@example.com',
          from: 'Rowcast <rowcast@example.com>',
          replyTo: 'help@example.com',
          subjectPrefix: '[prod]',
          smtp: smtp(),
        },
        { msg },
      ),
      live(),
    );
    assert.deepEqual(outcome, { kind: 'done', status: 250 });
    const { mail, envelope } = await lastReceived('ops@example.com');
    assert.equal(envelope.from, 'rowcast@example.com');
    assert.equal(mail.subject, '[prod] Order 42 created');
    assert.equal(mail.from?.text, '"Rowcast" <rowcast@example.com>');
    assert.equal(mail.replyTo?.text, 'help@example.com');
    assert.equal(mail.messageId, `<${msg.id}.ops-mail@rowcast>`);
    assert.equal(mail.date?.toISOString(), msg.timestamp);
    assert.equal(mail.headers.get('x-rowcast-message-id'), msg.id);
    assert.equal(mail.headers.get('x-rowcast-topic'), 'orders');
    assert.equal(mail.headers.get('x-rowcast-subscription'), 'ops-mail');
    assert.equal(mail.headers.get('auto-submitted'), 'auto-generated');
    const text = mail.text ?? '';
    assert.match(text, /^Order 42 created\n/);
    assert.match(text, /Topic: +orders/);
    assert.match(text, /op: INSERT/);
    assert.match(text, /table: public\.orders/);
    // Pretty-printed, every digit of the bigint kept.
    assert.match(
      text,
      /\{\n {2}"order_id": 12345678901234567890,\n {2}"customer": "Ada",\n {2}"lines": \[\n {4}\{\n {6}"sku": "A-1",/,
    );
    assert.ok(text.includes(renderBody('envelope', msg)), 'the raw envelope JSON is in the body');
  });

  test('email: no subject falls back to "rowcast: <topic>"; a non-JSON body is shown as is', async () => {
    const msg = message({ subject: null, body: 'plain words, not JSON', contentType: 'text/plain' });
    const outcome = await sink.send(
      attempt({ to: ['a@example.com', 'b@example.com'], from: 'rowcast@example.com', smtp: smtp() }, { msg }),
      live(),
    );
    assert.equal(outcome.kind, 'done');
    const { mail, envelope } = await lastReceived('a@example.com');
    assert.deepEqual(envelope.to, ['a@example.com', 'b@example.com']);
    assert.equal(mail.subject, 'rowcast: orders');
    assert.match(mail.text ?? '', /Message \(text\/plain\):\nplain words, not JSON\n/);
  });

  test('email-json: the text is the envelope JSON', async () => {
    const msg = message({ trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const outcome = await sink.send(
      attempt(
        { to: 'machine@example.com', from: 'rowcast@example.com', smtp: smtp() },
        { protocol: 'email-json', msg },
      ),
      live(),
    );
    assert.equal(outcome.kind, 'done');
    const { mail } = await lastReceived('machine@example.com');
    assert.equal(mail.subject, 'Order 42 created');
    assert.equal((mail.text ?? '').trim(), renderBody('envelope', msg));
    const envelope = JSON.parse(mail.text ?? '') as { id: string; topic: string; attributes: Record<string, string> };
    assert.equal(envelope.id, msg.id);
    assert.equal(envelope.topic, 'orders');
    assert.deepEqual(envelope.attributes, msg.attributes);
  });

  test('the Message-ID is the same on every attempt of a message', async () => {
    const msg = message();
    const options = { to: 'dedupe@example.com', from: 'rowcast@example.com', smtp: smtp() };
    assert.equal((await sink.send(attempt(options, { msg, attempt: 1 }), live())).kind, 'done');
    const first = await lastReceived('dedupe@example.com');
    assert.equal((await sink.send(attempt(options, { msg, attempt: 2 }), live())).kind, 'done');
    const second = await lastReceived('dedupe@example.com');
    assert.notEqual(first.envelope, second.envelope);
    assert.equal(first.mail.messageId, `<${msg.id}.ops-mail@rowcast>`);
    assert.equal(second.mail.messageId, first.mail.messageId);
    assert.equal(second.mail.headers.get('x-rowcast-attempt'), '2');
  });

  test('a 4xx reply to RCPT TO is retried, naming the code and the reply', async () => {
    const outcome = await sink.send(
      attempt({ to: 'deferred@example.com', from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.equal(outcome.status, 451);
    assert.match(
      'error' in outcome ? outcome.error : '',
      /SMTP 451 to RCPT TO from 127\.0\.0\.1:\d+: 451 4\.3\.0 Try again later/,
    );
  });

  test('a 4xx reply to DATA is retried', async () => {
    const outcome = await sink.send(
      attempt({ to: 'datadefer@example.com', from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.equal(outcome.status, 452);
    assert.match('error' in outcome ? outcome.error : '', /452 4\.3\.1 Insufficient system storage/);
  });

  test('a 5xx for every recipient is dead', async () => {
    const outcome = await sink.send(
      attempt({ to: 'nobody@example.com', from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'dead');
    assert.equal(outcome.status, 550);
    assert.match(
      'error' in outcome ? outcome.error : '',
      /SMTP 550 to RCPT TO .*5\.1\.1 Mailbox unavailable \(recipients: nobody@example\.com\)/,
    );
  });

  test('a 5xx reply to DATA is dead', async () => {
    const outcome = await sink.send(
      attempt({ to: 'datareject@example.com', from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'dead');
    assert.equal(outcome.status, 554);
  });

  test('a 5xx for some recipients only: delivered to the others', async () => {
    const outcome = await sink.send(
      attempt({ to: ['nobody@example.com', 'partial@example.com'], from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'done');
    const { envelope } = await lastReceived('partial@example.com');
    assert.deepEqual(envelope.to, ['partial@example.com']);
  });

  test('every recipient refused, one of them only for now: retried', async () => {
    const outcome = await sink.send(
      attempt({ to: ['nobody@example.com', 'deferred@example.com'], from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.equal(outcome.status, 451);
  });

  test('a connection dropped in the middle of DATA is retried', async () => {
    const outcome = await sink.send(
      attempt({ to: 'drop@example.com', from: 'rowcast@example.com', smtp: smtp() }),
      live(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.match(
      'error' in outcome ? outcome.error : '',
      /connection to SMTP server 127\.0\.0\.1:\d+ closed unexpectedly/,
    );
    // The pool recovers: the next mail goes through on a new connection.
    assert.equal(
      (await sink.send(attempt({ to: 'after-drop@example.com', from: 'rowcast@example.com', smtp: smtp() }), live()))
        .kind,
      'done',
    );
  });

  test('connection refused is retried', async () => {
    const refused = await closedPort();
    const outcome = await sink.send(
      attempt({ to: 'ops@example.com', from: 'rowcast@example.com', smtp: { host: '127.0.0.1', port: refused } }),
      live(),
    );
    assert.equal(outcome.kind, 'retry');
    assert.match('error' in outcome ? outcome.error : '', new RegExp(`127\\.0\\.0\\.1:${refused}.*ECONNREFUSED`));
  });

  test('a server that never greets: retried after deliveryPolicy.timeout', async () => {
    const silent = net.createServer(() => {});
    const held: net.Socket[] = [];
    silent.on('connection', (s) => held.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const outcome = await sink.send(
        attempt(
          {
            to: 'ops@example.com',
            from: 'rowcast@example.com',
            smtp: { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port },
          },
          { timeout: 300 },
        ),
        live(),
      );
      assert.equal(outcome.kind, 'retry');
      // The policy's 300 ms (nodemailer's own default greeting timeout is 30 s): the sink's deadline, or the
      // transport's timeouts, which the sink sets to the same value.
      assert.match(
        'error' in outcome ? outcome.error : '',
        /timed out after 300 ms|timed out talking to SMTP server .*\(greeting\)/,
      );
      assert.ok(Date.now() - started >= 290, `gave up after ${Date.now() - started} ms, before the 300 ms timeout`);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('shutdown aborts a send in progress', async () => {
    const silent = net.createServer(() => {});
    const held: net.Socket[] = [];
    silent.on('connection', (s) => held.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const shutdown = new AbortController();
      setTimeout(() => shutdown.abort(), 100);
      const outcome = await sink.send(
        attempt(
          {
            to: 'ops@example.com',
            from: 'rowcast@example.com',
            smtp: { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port },
          },
          { timeout: 10_000 },
        ),
        shutdown.signal,
      );
      // The abort, not the 10 s timeout, ended it (a timeout says "timed out").
      assert.deepEqual(outcome, { kind: 'retry', error: 'aborted: rowcast is shutting down' });
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('AUTH with the password read from the environment', async () => {
    process.env[PASSWORD_ENV] = PASSWORD;
    try {
      const outcome = await sink.send(
        attempt({
          to: 'authed@example.com',
          from: 'rowcast@example.com',
          smtp: smtp({ auth: { user: USER, pass: { env: PASSWORD_ENV } } }),
        }),
        live(),
      );
      assert.deepEqual(outcome, { kind: 'done', status: 250 });
      const { envelope } = await lastReceived('authed@example.com');
      assert.equal(envelope.user, USER);
    } finally {
      delete process.env[PASSWORD_ENV];
    }
  });

  test('a wrong password: a clear error without the password in it', async () => {
    const wrong = 'Wr0ng-Pa55word-XYZ';
    process.env[PASSWORD_ENV] = wrong;
    try {
      for (const pass of [wrong, { env: PASSWORD_ENV }]) {
        const outcome = await sink.send(
          attempt({ to: 'ops@example.com', from: 'rowcast@example.com', smtp: smtp({ auth: { user: USER, pass } }) }),
          live(),
        );
        assert.equal(outcome.kind, 'retry');
        const error = 'error' in outcome ? outcome.error : '';
        assert.match(
          error,
          /SMTP authentication as "rowcast" failed at 127\.0\.0\.1:\d+: 535 5\.7\.8 Authentication credentials invalid; check options\.smtp\.auth/,
        );
        assert.ok(!error.includes(wrong), error);
        assert.ok(!error.includes(Buffer.from(wrong).toString('base64')), error);
        assert.ok(!error.includes(Buffer.from(`\0${USER}\0${wrong}`).toString('base64')), error);
      }
    } finally {
      delete process.env[PASSWORD_ENV];
    }
  });

  test('a password environment variable that is not set is retried with a clear error', async () => {
    delete process.env.ROWCAST_TEST_SMTP_UNSET;
    const outcome = await sink.send(
      attempt({
        to: 'ops@example.com',
        from: 'rowcast@example.com',
        smtp: smtp({ auth: { user: USER, pass: { env: 'ROWCAST_TEST_SMTP_UNSET' } } }),
      }),
      live(),
    );
    assert.deepEqual(outcome, {
      kind: 'retry',
      error:
        'options.smtp.auth.pass: environment variable ROWCAST_TEST_SMTP_UNSET is not set in the delivering process; set it to the SMTP password and restart rowcast',
    });
  });

  test('invalid options are dead, naming the option', async () => {
    const before = sessions;
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /invalid email options: options: write the email options/],
      [{ from: 'rowcast@example.com', smtp: smtp() }, /options\.to: write an address/],
      [
        { to: 'not-an-address', from: 'rowcast@example.com', smtp: smtp() },
        /options\.to: "not-an-address" is not an email address/,
      ],
      [
        { to: ['ok@example.com', 'bad'], from: 'rowcast@example.com', smtp: smtp() },
        /options\.to\.1: "bad" is not an email address/,
      ],
      [
        { to: 'ops@example.com', from: 'rowcast@example.com', smtp: { host: '127.0.0.1', port: 'smtp' } },
        /options\.smtp\.port: a TCP port number/,
      ],
      [
        { to: 'ops@example.com', from: 'rowcast@example.com', smtp: { host: '127.0.0.1', hots: 'x' } },
        /options\.smtp: Unrecognized key: "hots"/,
      ],
      [
        { to: 'ops@example.com', from: 'rowcast@example.com', smtp: smtp({ auth: { user: USER, pass: 42 as never } }) },
        /options\.smtp\.auth\.pass: write the password, or \{ env: "SMTP_PASSWORD" \}/,
      ],
      [
        { to: 'ops@example.com', from: 'rowcast@example.com', smtp: smtp(), subjectPrefix: 'a\nBcc: x@evil.example' },
        /options\.subjectPrefix: must be a single line/,
      ],
    ];
    for (const [options, expected] of cases) {
      const outcome = await sink.send(attempt(options), live());
      assert.equal(outcome.kind, 'dead', JSON.stringify(options));
      assert.match('error' in outcome ? outcome.error : '', expected);
      assert.match('error' in outcome ? outcome.error : '', /^subscription ops-mail: /);
    }
    assert.equal(sessions, before, 'nothing was sent');
  });

  test('smtp.port defaults to 587, or 465 with secure', async () => {
    const { emailOptionsSchema } = await import('../../src/config/sink-settings/email-settings.js');
    const base = { to: 'ops@example.com', from: 'rowcast@example.com' };
    assert.deepEqual(emailOptionsSchema.parse({ ...base, smtp: { host: 'smtp.example.com' } }).smtp, {
      host: 'smtp.example.com',
      port: 587,
      secure: false,
    });
    assert.equal(
      emailOptionsSchema.parse({ ...base, smtp: { host: 'smtp.example.com', secure: true } }).smtp.port,
      465,
    );
    assert.deepEqual(emailOptionsSchema.parse({ ...base, smtp: { host: 'h' } }).to, ['ops@example.com']);
  });
});

test('prettyJson keeps every digit and leaves non-JSON alone', () => {
  assert.equal(
    prettyJson('{"a":[1,{"b":"x,:{}\\"y"}],"n":123456789012345678901234567890.5,"e":{},"l":[ ]}'),
    '{\n  "a": [\n    1,\n    {\n      "b": "x,:{}\\"y"\n    }\n  ],\n  "n": 123456789012345678901234567890.5,\n  "e": {},\n  "l": []\n}',
  );
  assert.equal(prettyJson('"just a string"'), '"just a string"');
  assert.equal(prettyJson('not json'), undefined);
});

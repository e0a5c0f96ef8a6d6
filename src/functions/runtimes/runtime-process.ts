import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { AwsIdentity } from '../../model/arn.js';
import { lambdaFunctionArn } from '../../model/arn.js';
import type { Logger } from '../../observability/logger.js';
import type { InvocationOutcome } from '../invocation-runner.js';
import type { InvocationSlot, InvocationSnsEndpoint } from '../invocation-sns-endpoint.js';
import type { HandlerError, InvokeRequest } from '../../model/thread-protocol.js';
import { payloadAsJson } from '../../model/invocation-payload.js';
import { CHANNEL_FD, CHANNEL_FD_VARIABLE, type ChannelFrame, FrameReader, writeFrame } from './runtime-channel.js';

export interface RuntimeProcessOptions {
  functionName: string;
  /** The configured runtime ("python3.12", "provided.al2023"), for AWS_EXECUTION_ENV. */
  runtime: string;
  /** The program and its arguments: ["python3", "<rowcast's bootstrap.py>"] or ["<the function's bootstrap>"]. */
  command: [string, ...string[]];
  handler: string;
  /** LAMBDA_TASK_ROOT, and the process's working directory. */
  directory: string;
  /** LAMBDA_RUNTIME_DIR: where the runtime's own code is. */
  runtimeDir: string;
  timeout: number;
  environment: Record<string, string>;
  memoryLimitMb: number;
  aws: AwsIdentity;
  /** Where the AWS SDK publishes (AWS_ENDPOINT_URL_SNS; boto3's default in rowcast's Python bootstrap), joining the process's invocation. */
  endpoint?: InvocationSnsEndpoint;
  /** rowcast's own bootstrap: the Runtime API's exchanges also go over a socket pair (runtime-channel.ts). */
  channel?: boolean;
}

/** Lambda's limit on a synchronous response (6 MB): a larger one fails the invocation. */
const MAX_RESPONSE_BYTES = 6 * 1024 * 1024;
/** After the deadline the runtime gets this long to post its response before the process is killed. */
const KILL_GRACE_MS = 100;
/** A new process's init phase (start, imports, module-scope code) may take this long; as Lambda's. */
const INIT_TIMEOUT_MS = 10_000;
/** How often the process's resident memory is read against its limit. */
const MEMORY_WATCH_MS = 200;
const API = '/2018-06-01/runtime';

/** Where the next event goes: the runtime's waiting GET …/invocation/next, or a frame on the channel. */
type EventSink = (headers: Record<string, string>, body: string) => void;

interface Running {
  request: Omit<InvokeRequest, 'deadline'>;
  started: number;
  deadline: number;
  /** Handed to the runtime (its GET …/next answered). */
  delivered: boolean;
  settle: (outcome: InvocationOutcome, reusable: boolean) => void;
}

/**
 * One runtime process and the Runtime API endpoint it alone talks to, as a Lambda execution environment has its
 * own: the API has no way to say which process asks for the next event, so each process gets its own loopback
 * port. The process runs one invocation at a time and is reused until it times out, crashes or fails its init.
 * rowcast's Python bootstrap makes the same exchanges on a socket pair instead (runtime-channel.ts), handled by the
 * same code as the HTTP requests they stand for.
 */
export class RuntimeProcess {
  private child: ChildProcess | null = null;
  /** The runtime's long-poll GET …/invocation/next (or its request on the channel), while it waits for an event. */
  private waiting: EventSink | null = null;
  private running: Running | null = null;
  private initialised = false;
  private initError: HandlerError | null = null;
  /** Why the process ended, once it has. */
  private exit: HandlerError | null = null;
  private readonly exitListeners = new Set<() => void>();
  private readonly initListeners = new Set<() => void>();
  private memoryWatch: NodeJS.Timeout | null = null;
  private overMemory = false;
  /** This process's SNS endpoint for the AWS SDK. */
  private readonly slot: InvocationSlot | undefined;
  /** The function's ARN, sent with every event. */
  private readonly functionArn: string;

  private constructor(
    private readonly options: RuntimeProcessOptions,
    private readonly server: Server,
    private readonly log: Logger,
  ) {
    this.slot = options.endpoint?.slot();
    this.functionArn = lambdaFunctionArn(options.aws, options.functionName);
  }

  static async start(options: RuntimeProcessOptions, log: Logger): Promise<RuntimeProcess> {
    // No keep-alive timeout: the runtime's one connection lives as long as the process (closed with it), and no
    // timer is set after each response and cleared at the next request.
    const server = createServer();
    server.keepAliveTimeout = 0;
    const proc = new RuntimeProcess(options, server, log);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proc.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    server.unref();
    proc.spawn((server.address() as AddressInfo).port);
    return proc;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  get ready(): boolean {
    return this.initialised;
  }

  private spawn(port: number): void {
    const o = this.options;
    const inherited = Object.fromEntries(
      ['PATH', 'LANG', 'LC_ALL', 'TZ', 'HOME'].flatMap((k) =>
        process.env[k] === undefined ? [] : [[k, process.env[k]!]],
      ),
    );
    const credentials = Object.fromEntries(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'].flatMap((k) =>
        process.env[k] === undefined ? [] : [[k, process.env[k]!]],
      ),
    );
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    const sdk = this.slot ? o.endpoint!.environment(this.slot, { ...inherited, ...credentials, ...o.environment }) : {};
    // Not rowcast's own environment (its database URL, its secrets): what Lambda gives a function, and the function's `environment`.
    const env: Record<string, string> = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      ...inherited,
      ...credentials,
      // The SDK's SNS endpoint is this process's own; the function's environment may still point it elsewhere.
      ...sdk,
      ...o.environment,
      // Lambda's reserved variables: a function's `environment` cannot override them.
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
      _HANDLER: o.handler,
      LAMBDA_TASK_ROOT: o.directory,
      LAMBDA_RUNTIME_DIR: o.runtimeDir,
      AWS_EXECUTION_ENV: `AWS_Lambda_${o.runtime}`,
      AWS_LAMBDA_FUNCTION_NAME: o.functionName,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(o.memoryLimitMb),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${o.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `${today}/[$LATEST]${randomBytes(16).toString('hex')}`,
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_REGION: o.aws.region,
      AWS_DEFAULT_REGION: o.aws.region,
    };
    // Killed if rowcast dies (setpriv's parent-death signal, where util-linux has it), as a Lambda environment
    // ends with its host; rowcast's Python bootstrap also exits when its stdin (a pipe from rowcast) closes.
    const [program, ...args] = hasSetpriv() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...o.command] : o.command;
    if (o.channel) env[CHANNEL_FD_VARIABLE] = String(CHANNEL_FD);
    // Its own process group, so that a timeout kills what the runtime started too (a shell bootstrap's curl).
    const child = spawn(program!, args, {
      cwd: o.directory,
      env,
      stdio: o.channel ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    if (o.channel) this.openChannel(child.stdio[CHANNEL_FD] as Socket);
    child.unref();
    // Never written: it only closes when rowcast ends.
    child.stdin!.on('error', () => {});
    for (const [stream, name] of [
      [child.stdout!, 'stdout'],
      [child.stderr!, 'stderr'],
    ] as const) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) =>
        this.log.info({ function: o.functionName, invocation: this.running?.request.id, stream: name }, line),
      );
    }
    child.once('error', (err) =>
      this.ended({
        type: 'Runtime.InvalidEntrypoint',
        message: `the runtime could not start ${o.command[0]}: ${err.message}`,
        stack: [],
      }),
    );
    child.once('exit', (code, signal) => {
      const how = signal ? `signal ${signal}` : `exit status ${code}`;
      this.ended(
        this.overMemory
          ? {
              type: 'Runtime.OutOfMemory',
              message: `the runtime process used more than memoryLimitMb (${o.memoryLimitMb} MB) and was killed`,
              stack: [],
            }
          : { type: 'Runtime.ExitError', message: `the runtime process exited (${how})`, stack: [] },
      );
    });
    if (child.pid !== undefined) this.watchMemory(child.pid);
  }

  /** Kills the process past its memory limit (Linux: resident set size from /proc). */
  private watchMemory(pid: number): void {
    const limitKb = this.options.memoryLimitMb * 1024;
    this.memoryWatch = setInterval(() => {
      let status: string;
      try {
        status = readFileSync(`/proc/${pid}/status`, 'utf8');
      } catch {
        return;
      }
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      if (rssKb > limitKb) {
        this.overMemory = true;
        this.kill();
      }
    }, MEMORY_WATCH_MS);
    this.memoryWatch.unref();
  }

  private ended(reason: HandlerError): void {
    if (this.exit) return;
    this.exit = reason;
    if (this.memoryWatch) clearInterval(this.memoryWatch);
    this.waiting = null;
    this.slot?.close();
    this.server.close();
    this.server.closeAllConnections();
    for (const listener of [...this.exitListeners, ...this.initListeners]) listener();
  }

  /** Kills the process and everything it started. */
  kill(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.exit === null) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        this.child?.kill('SIGKILL');
      }
    }
  }

  /**
   * The init phase: resolves when the runtime first asks for an event (null), or with why it failed — an init
   * error it reported, an exit, or no request within 10 s. As in Lambda it is not counted in the timeout.
   */
  init(signal: AbortSignal): Promise<HandlerError | null> {
    return new Promise((resolve) => {
      const done = (failure: HandlerError | null) => {
        clearTimeout(timer);
        this.initListeners.delete(check);
        signal.removeEventListener('abort', onAbort);
        if (failure) this.kill();
        resolve(failure);
      };
      const check = () => {
        if (this.initError) done(this.initError);
        else if (this.exit) done({ ...this.exit, message: `${this.exit.message} during its init phase` });
        else if (this.initialised) done(null);
      };
      const onAbort = () => done({ type: 'Aborted', message: 'aborted: rowcast is shutting down', stack: [] });
      const timer = setTimeout(
        () =>
          done({
            type: 'InitTimeoutError',
            message: `the runtime did not ask for an event within ${INIT_TIMEOUT_MS} ms of starting; make its init (imports, module-scope code) faster`,
            stack: [],
          }),
        INIT_TIMEOUT_MS,
      );
      this.initListeners.add(check);
      signal.addEventListener('abort', onAbort);
      check();
    });
  }

  /** Runs one invocation; `reusable` says whether the process may take the next one. */
  run(
    request: Omit<InvokeRequest, 'deadline'>,
    signal: AbortSignal,
  ): Promise<{ outcome: InvocationOutcome; reusable: boolean }> {
    const started = Date.now();
    const timeout = this.options.timeout;
    return new Promise((resolve) => {
      const finish = (outcome: InvocationOutcome, reusable: boolean) => {
        if (this.running !== running) return;
        this.running = null;
        // What the SDK published joins the attempt: written with its success, dropped otherwise.
        const viaSdk = this.slot?.end() ?? [];
        if (outcome.ok && viaSdk.length) outcome = { ...outcome, published: [...outcome.published, ...viaSdk] };
        clearTimeout(timer);
        this.exitListeners.delete(onExit);
        signal.removeEventListener('abort', onAbort);
        if (!reusable) this.kill();
        resolve({ outcome, reusable: reusable && this.alive });
      };
      const fail = (type: string, message: string, reusable = false) =>
        finish({ ok: false, error: { type, message, stack: [] }, durationMs: Date.now() - started }, reusable);
      const running: Running = {
        request,
        started,
        deadline: started + timeout,
        delivered: false,
        // A response after the deadline (within the grace) is a timeout all the same; the process is still reusable.
        settle: (outcome, reusable) =>
          Date.now() > running.deadline
            ? fail('TimeoutError', `timed out after ${timeout} ms`, reusable)
            : finish(outcome, reusable),
      };
      const onExit = () =>
        finish(
          {
            ok: false,
            error: { ...this.exit!, message: `${this.exit!.message} during the invocation` },
            durationMs: Date.now() - started,
          },
          false,
        );
      const onAbort = () => fail('Aborted', 'aborted: rowcast is shutting down');
      const timer = setTimeout(() => fail('TimeoutError', `timed out after ${timeout} ms`), timeout + KILL_GRACE_MS);
      this.running = running;
      this.slot?.begin(request.id);
      this.exitListeners.add(onExit);
      signal.addEventListener('abort', onAbort);
      if (this.exit) return onExit();
      if (this.waiting) this.deliver(this.waiting);
    });
  }

  async close(): Promise<void> {
    if (!this.exit) {
      const exited = new Promise<void>((resolve) => this.exitListeners.add(resolve));
      this.kill();
      await exited;
    }
  }

  /** The channel's frames, handled as the HTTP requests they stand for; a broken channel kills the process. */
  private openChannel(socket: Socket): void {
    // Its end comes with the process's: the exit says why.
    socket.on('error', () => {});
    const reader = new FrameReader(
      MAX_RESPONSE_BYTES,
      (frame) => this.onFrame(socket, frame),
      (why) => {
        this.log.error(
          { function: this.options.functionName, why },
          'the runtime process broke its channel to rowcast',
        );
        this.kill();
      },
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
  }

  private onFrame(socket: Socket, { header, body }: ChannelFrame): void {
    const errorType = typeof header.errorType === 'string' ? header.errorType : undefined;
    if (header.op === 'next') return this.nextEvent((headers, event) => writeFrame(socket, { headers }, event));
    if (header.op === 'response' || header.op === 'error') {
      const running = this.running;
      // Unanswered: the bootstrap does not wait for an answer (it would have been 202, or 400 for another id).
      if (running?.delivered && header.id === running.request.id)
        this.posted(running, header.op, body, errorType, () => {});
      return;
    }
    if (header.op === 'init-error') return this.initFailed(body, errorType, (status) => writeFrame(socket, { status }));
    this.log.error({ function: this.options.functionName, op: header.op }, 'unknown frame on the runtime channel');
    this.kill();
  }

  /** The runtime asks for the next event: the init phase is over; the event goes now, or once an invocation runs. */
  private nextEvent(sink: EventSink): void {
    this.initialised = true;
    for (const listener of this.initListeners) listener();
    if (this.running && !this.running.delivered) return this.deliver(sink);
    this.waiting = sink;
  }

  /** The runtime posted the running invocation's response or error (null: over the size limit); answered, then settled. */
  private posted(
    running: Running,
    kind: 'response' | 'error',
    body: Buffer | null,
    errorType: string | string[] | undefined,
    answer: (status: number, body: unknown) => void,
  ): void {
    if (body === null) {
      answer(413, {
        errorMessage: `the response is over ${MAX_RESPONSE_BYTES} bytes`,
        errorType: 'RequestEntityTooLarge',
      });
      return running.settle(
        {
          ok: false,
          error: {
            type: 'Function.ResponseSizeTooLarge',
            message: `the response is over Lambda's limit of ${MAX_RESPONSE_BYTES} bytes`,
            stack: [],
          },
          durationMs: Date.now() - running.started,
        },
        true,
      );
    }
    answer(202, { status: 'OK' });
    const durationMs = Date.now() - running.started;
    if (kind === 'response')
      running.settle({ ok: true, result: body.length ? body.toString('utf8') : null, published: [], durationMs }, true);
    else running.settle({ ok: false, error: lambdaError(body, errorType), durationMs }, true);
  }

  /** The runtime reports that its init failed (after the init phase: refused). */
  private initFailed(
    body: Buffer | null,
    errorType: string | string[] | undefined,
    answer: (status: number, body: unknown) => void,
  ): void {
    if (this.initialised)
      return answer(403, {
        errorMessage: 'the init phase is over: report an invocation error instead',
        errorType: 'InvalidStateTransition',
      });
    answer(202, { status: 'OK' });
    this.initError = lambdaError(body ?? Buffer.alloc(0), errorType);
    for (const listener of this.initListeners) listener();
  }

  private deliver(sink: EventSink): void {
    const running = this.running!;
    this.waiting = null;
    running.delivered = true;
    const { request } = running;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': request.id,
      'lambda-runtime-deadline-ms': String(running.deadline),
      'lambda-runtime-invoked-function-arn': this.functionArn,
    };
    const trace = xrayTraceHeader(request.trace);
    if (trace) headers['lambda-runtime-trace-id'] = trace;
    if (request.clientContext !== null && request.clientContext !== undefined)
      headers['lambda-runtime-client-context'] = JSON.stringify(request.clientContext);
    sink(headers, payloadAsJson(request.payload));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = (req.url ?? '').split('?')[0]!;
    if (req.method === 'GET' && url === `${API}/invocation/next`) {
      const sink: EventSink = (headers, body) => send(res, 200, headers, body);
      this.nextEvent(sink);
      if (this.waiting === sink)
        res.once('close', () => {
          if (this.waiting === sink) this.waiting = null;
        });
      return;
    }
    const invocation = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method === 'POST' && invocation) {
      const [, id, kind] = invocation;
      const running = this.running;
      // Request ids are UUIDs: compared as sent, so a malformed escape cannot throw here.
      if (!running?.delivered || id !== encodeURIComponent(running.request.id)) {
        drain(req);
        return reply(res, 400, {
          errorMessage: `no invocation ${id} is in progress in this runtime; post the id of the event GET ${API}/invocation/next returned`,
          errorType: 'InvalidRequestID',
        });
      }
      return void readBody(req, MAX_RESPONSE_BYTES).then((body) =>
        this.posted(
          running,
          kind as 'response' | 'error',
          body,
          req.headers['lambda-runtime-function-error-type'],
          (status, answer) => reply(res, status, answer),
        ),
      );
    }
    if (req.method === 'POST' && url === `${API}/init/error`) {
      const answer = (status: number, body: unknown) => reply(res, status, body);
      if (this.initialised) {
        drain(req);
        return this.initFailed(null, undefined, answer);
      }
      return void readBody(req, MAX_RESPONSE_BYTES).then((body) =>
        this.initFailed(body, req.headers['lambda-runtime-function-error-type'], answer),
      );
    }
    drain(req);
    reply(res, 404, {
      errorMessage: `no such Runtime API resource: ${req.method} ${url}`,
      errorType: 'InvalidRequest',
    });
  }
}

/** Lambda's error shape ({errorMessage, errorType, stackTrace}) as rowcast's; a body that is not one is kept as the message. */
function lambdaError(body: Buffer, headerType: string | string[] | undefined): HandlerError {
  const fallbackType = (typeof headerType === 'string' && headerType) || 'Unhandled';
  try {
    const e = JSON.parse(body.toString('utf8')) as {
      errorMessage?: unknown;
      errorType?: unknown;
      stackTrace?: unknown;
    };
    const stack = Array.isArray(e.stackTrace)
      ? e.stackTrace.map(String)
      : typeof e.stackTrace === 'string'
        ? e.stackTrace.split('\n')
        : [];
    return {
      type: typeof e.errorType === 'string' && e.errorType ? e.errorType : fallbackType,
      message: typeof e.errorMessage === 'string' ? e.errorMessage : JSON.stringify(e.errorMessage ?? null),
      stack,
    };
  } catch {
    return { type: fallbackType, message: body.toString('utf8'), stack: [] };
  }
}

let setpriv: boolean | undefined;
/** Whether util-linux's setpriv (with --pdeathsig) is on the PATH; asked once. */
function hasSetpriv(): boolean {
  setpriv ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { timeout: 10_000 }).status === 0;
  return setpriv;
}

/** A W3C traceparent as X-Ray's trace header (Root=1-<8 hex>-<24 hex>;Parent=<span>;Sampled=<0|1>), which Lambda runtimes read. */
export function xrayTraceHeader(traceparent: string | null): string | null {
  const m = traceparent && /^00-([0-9a-f]{8})([0-9a-f]{24})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent);
  return m ? `Root=1-${m[1]}-${m[2]};Parent=${m[3]};Sampled=${Number.parseInt(m[4]!, 16) & 1}` : null;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, { 'content-type': 'application/json' }, JSON.stringify(body));
}

/**
 * A whole response with its Content-Length: Node.js then writes the head and the body in one piece, where a
 * response without one is sent in chunked encoding (a chunk, its size line and the last chunk), more work on both sides.
 */
function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(status, headers).end(body);
}

function drain(req: IncomingMessage): void {
  req.resume();
}

/** The request's body; null when it is over `max` bytes. Never resolves for a request cut off (the runtime's exit tells). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > max ? null : Buffer.concat(chunks)));
    req.on('error', () => {});
  });
}

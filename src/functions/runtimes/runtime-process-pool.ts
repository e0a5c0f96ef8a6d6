import { fileURLToPath } from 'node:url';
import type { AwsIdentity } from '../../model/arn.js';
import type { FunctionConfig } from '../../config/function-schema.js';
import type { Logger } from '../../observability/logger.js';
import type { InvocationOutcome, InvocationRunner } from '../invocation-runner.js';
import type { InvocationSnsEndpoint } from '../invocation-sns-endpoint.js';
import type { InvokeRequest } from '../../model/thread-protocol.js';
import { RuntimeProcess, type RuntimeProcessOptions } from './runtime-process.js';
import { runtimeKind } from '../../config/runtime-kind.js';

/** rowcast's Python runtime interface client (standard library only), shipped beside this module. */
const PYTHON_BOOTSTRAP = fileURLToPath(new URL('./python/bootstrap.py', import.meta.url));

/**
 * Runtime processes of one python3 or provided function, each running one invocation at a time through Lambda's
 * Runtime API. A process is reused between invocations (module-scope state survives, as on Lambda) and killed
 * and replaced after a timeout, a crash, an init error or going over its memory limit. The function worker runs
 * at most `concurrency` invocations of a function at once, so there are never more processes than that.
 */
export class RuntimeProcessPool implements InvocationRunner {
  private readonly idle: RuntimeProcess[] = [];
  private readonly all = new Set<RuntimeProcess>();
  private readonly options: RuntimeProcessOptions;

  constructor(
    functionName: string,
    config: FunctionConfig,
    aws: AwsIdentity,
    private readonly log: Logger,
    endpoint?: InvocationSnsEndpoint,
  ) {
    const python = runtimeKind(config.runtime) === 'python';
    const directory = config.directory ?? process.cwd();
    this.options = {
      functionName,
      runtime: config.runtime,
      // -u: unbuffered, so that print() reaches rowcast's log as it happens.
      command: python ? ['python3', '-u', PYTHON_BOOTSTRAP] : [config.bootstrap ?? `${directory}/bootstrap`],
      handler: config.handler,
      directory,
      runtimeDir: python ? fileURLToPath(new URL('./python/', import.meta.url)) : directory,
      timeout: config.timeout,
      environment: config.environment,
      memoryLimitMb: config.memoryLimitMb,
      aws,
      endpoint,
      channel: python,
    };
  }

  async invoke(request: Omit<InvokeRequest, 'deadline'>, signal: AbortSignal): Promise<InvocationOutcome> {
    let proc = this.idle.pop();
    while (proc && !proc.alive) proc = this.idle.pop();
    if (!proc) {
      const started = Date.now();
      try {
        proc = await RuntimeProcess.start(this.options, this.log);
      } catch (err) {
        return {
          ok: false,
          error: {
            type: 'Runtime.Unavailable',
            message: `could not open the Runtime API endpoint: ${(err as Error).message}`,
            stack: [],
          },
          durationMs: Date.now() - started,
        };
      }
      this.all.add(proc);
    }
    if (!proc.ready) {
      const started = Date.now();
      const failure = await proc.init(signal);
      if (failure) {
        this.all.delete(proc);
        return { ok: false, error: failure, durationMs: Date.now() - started };
      }
    }
    const { outcome, reusable } = await proc.run(request, signal);
    if (reusable) this.idle.push(proc);
    else this.all.delete(proc);
    return outcome;
  }

  releaseIdle(): void {
    for (const proc of this.idle.splice(0)) {
      this.all.delete(proc);
      proc.kill();
    }
  }

  async close(): Promise<void> {
    this.idle.length = 0;
    await Promise.all([...this.all].map((p) => p.close()));
    this.all.clear();
  }
}

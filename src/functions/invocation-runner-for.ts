import type { AwsConfig } from '../config/aws-schema.js';
import type { FunctionConfig } from '../config/function-schema.js';
import { runtimeKind } from '../config/runtime-kind.js';
import type { Logger } from '../observability/logger.js';
import { HandlerPool } from './handler-pool.js';
import type { InvocationRunner } from './invocation-runner.js';
import type { InvocationSnsEndpoint } from './invocation-sns-endpoint.js';
import { RuntimeProcessPool } from './runtimes/runtime-process-pool.js';

/** Where a function's invocations run: worker threads for nodejs, runtime processes (Lambda's Runtime API) for the rest. */
export function invocationRunnerFor(
  name: string,
  config: FunctionConfig,
  aws: AwsConfig,
  log: Logger,
  endpoint: InvocationSnsEndpoint,
): InvocationRunner {
  return runtimeKind(config.runtime) === 'nodejs'
    ? nodeHandlers(name, config, log, endpoint)
    : new RuntimeProcessPool(name, config, aws, log, endpoint);
}

function nodeHandlers(name: string, config: FunctionConfig, log: Logger, endpoint: InvocationSnsEndpoint): HandlerPool {
  const [modulePath, exportName = 'handler'] = config.handler.split('#') as [string, string?];
  return new HandlerPool(
    {
      functionName: name,
      modulePath,
      exportName,
      timeout: config.timeout,
      environment: config.environment,
      memoryLimitMb: config.memoryLimitMb,
      endpoint,
    },
    log,
  );
}

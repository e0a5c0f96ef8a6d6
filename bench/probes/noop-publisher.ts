// The probes' no-op function: publishes its event once.
import type { LambdaContext } from '../../src/functions/lambda-context.js';

export const handler = async (event: unknown, context: LambdaContext) => {
  await context.publish('out', event);
};

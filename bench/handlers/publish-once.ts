// The benchmark's no-op function: publishes the change it was invoked with, once, to the topic ENV_TOPIC.
import type { LambdaContext } from '../../src/functions/lambda-context.js';

export const handler = async (event: unknown, context: LambdaContext) => {
  await context.publish(process.env.ENV_TOPIC!, event);
};

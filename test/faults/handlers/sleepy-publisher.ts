// A handler for 06-sigterm-drain. On its first attempt it tells the test it is running (POST to PING_URL), then
// takes event.after.ms (so that SIGTERM finds it in flight); then it publishes the captured change to the topic
// named by ENV_TOPIC_ARN. Later attempts publish at once.
import type { LambdaContext } from '../../../src/functions/lambda-context.js';

export const handler = async (event: { after?: { id?: number; ms?: number } }, context: LambdaContext) => {
  if (context.attempt === 1) {
    await fetch(process.env.PING_URL!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: event.after?.id }),
    });
    await new Promise((r) => setTimeout(r, event.after?.ms ?? 0));
  }
  const { messageId } = await context.publish(process.env.ENV_TOPIC_ARN!, event, {
    subject: `attempt ${context.attempt}`,
  });
  return { messageId };
};

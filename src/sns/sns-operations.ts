import type { Operation, SnsContext } from './sns-lookups.js';
import { publishOperations } from './sns-publish-operations.js';
import { subscriptionOperations } from './sns-subscription-operations.js';
import { topicOperations } from './sns-topic-operations.js';

export { SUBSCRIBE_PROTOCOLS } from './sns-subscription-operations.js';

/**
 * The SNS operations over rowcast's own tables: topics and subscriptions made here are rows of rowcast.topics and
 * rowcast.subscriptions with owner 'api' (`rowcast apply` leaves them alone); a Publish inserts the message and its
 * deliveries in one transaction, committed before the answer, through the fan-out that function publishes use.
 * Each operation returns the inner XML of its <OpResult> (null for none). One module per resource: topics
 * (sns-topic-operations.ts), subscriptions (sns-subscription-operations.ts), publishing (sns-publish-operations.ts).
 */

export type SnsOperationsOptions = SnsContext;

export class SnsOperations {
  readonly operations: Record<string, Operation>;

  constructor(options: SnsOperationsOptions) {
    const ctx: SnsContext = { pool: options.pool, aws: options.aws, pageSize: options.pageSize };
    this.operations = { ...topicOperations(ctx), ...subscriptionOperations(ctx), ...publishOperations(ctx) };
  }
}

import type { Pool } from '../../../store/pool.js';
import { renderBody } from '../../../model/message-format.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';

/**
 * A function as a subscription endpoint: delivering a message queues one invocation of the function (its event is
 * the message). Idempotent per message and function, so an at-least-once redelivery queues nothing twice.
 */
export class FunctionSink implements Sink {
  constructor(
    private readonly pool: Pool,
    private readonly onQueued: () => void,
  ) {}

  async send({ subscription, message }: DeliveryAttempt): Promise<SendOutcome> {
    try {
      const res = await this.pool.query(
        `INSERT INTO rowcast.invocations (function, payload, source, message_id, trace)
         SELECT f.name, $2, 'subscription', $3, $4 FROM rowcast.functions f WHERE f.name = $1
         ON CONFLICT (message_id, function) WHERE message_id IS NOT NULL DO NOTHING
         RETURNING 1`,
        [subscription.endpoint, renderBody(subscription.settings.format, message), message.id, message.trace],
      );
      if (!res.rowCount) {
        const exists = await this.pool.query('SELECT 1 FROM rowcast.functions WHERE name = $1', [
          subscription.endpoint,
        ]);
        if (!exists.rowCount)
          return {
            kind: 'retry',
            error: `function "${subscription.endpoint}" does not exist; declare it under functions and run rowcast apply`,
          };
      }
      this.onQueued();
      return { kind: 'done' };
    } catch (err) {
      return { kind: 'retry', error: `queueing the invocation failed: ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {}
}

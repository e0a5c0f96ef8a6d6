import { DELIVERIES_PAYLOAD, WAKE_CHANNEL } from '../queue/listener.js';
import { type PoolClient, withTransaction } from '../store/pool.js';
import { type NewMessage, publishMessages } from '../routing/fan-out.js';
import { type QueryParams, toXml } from './query-protocol.js';
import { batchEntries, batchMessages, newMessage, publishTarget } from './sns-publish-message.js';
import { findTopic, type Operation, type SnsContext, topicParam } from './sns-lookups.js';

/**
 * Publish and PublishBatch: the message and its deliveries inserted in one transaction, committed before the
 * answer, through the fan-out that function publishes use.
 */
export function publishOperations(ctx: SnsContext): Record<string, Operation> {
  return {
    Publish: (p) => publish(ctx, p),
    PublishBatch: (p) => publishBatch(ctx, p),
  };
}

async function publish(ctx: SnsContext, p: QueryParams): Promise<string> {
  const topicName = publishTarget(p);
  return withTransaction(ctx.pool, async (client) => {
    const topic = (await findTopic(client, topicName, true))!;
    const message = newMessage(p, '', topic);
    await publishMessages(client, [message], null);
    await wakeDeliveries(client);
    const fifo = topic.fifo ? await fifoAnswer(client, message) : undefined;
    return toXml({ MessageId: fifo?.id ?? message.id, SequenceNumber: fifo?.seq });
  });
}

async function publishBatch(ctx: SnsContext, p: QueryParams): Promise<string> {
  const topicName = topicParam(p, 'TopicArn');
  const entries = batchEntries(p);

  return withTransaction(ctx.pool, async (client) => {
    const topic = (await findTopic(client, topicName, true))!;
    const { ok, failed } = batchMessages(p, entries, topic);
    if (ok.length) {
      await publishMessages(
        client,
        ok.map((o) => o.message),
        null,
      );
      await wakeDeliveries(client);
    }
    const successful = [];
    for (const o of ok) {
      const fifo = topic.fifo ? await fifoAnswer(client, o.message) : undefined;
      successful.push({ Id: o.id, MessageId: fifo?.id ?? o.message.id, SequenceNumber: fifo?.seq });
    }
    return toXml({ Successful: successful, Failed: failed });
  });
}

/**
 * Wakes every process's delivery worker (and topic streams) at the commit, so the deliveries start now rather than
 * at the next poll. Unlike capture triggers, a Publish always notifies: it is one HTTP request per transaction anyway.
 */
async function wakeDeliveries(client: PoolClient): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, DELIVERIES_PAYLOAD]);
}

/**
 * A FIFO message's MessageId and SequenceNumber. A duplicate (dropped by the fan-out) is answered as SNS answers
 * it: with the id and sequence number of the message its deduplication id let through.
 */
async function fifoAnswer(client: PoolClient, message: NewMessage): Promise<{ id: string; seq: string }> {
  const { rows } = await client.query<{ id: string; seq: string }>(
    `SELECT id::text, lpad(seq::text, 20, '0') AS seq FROM rowcast.messages WHERE id = $1
     UNION ALL
     SELECT m.id::text, lpad(m.seq::text, 20, '0') FROM rowcast.dedup d JOIN rowcast.messages m ON m.id = d.message_id WHERE d.topic = $2 AND d.dedup_key = $3
     LIMIT 1`,
    [message.id, message.topic, message.dedupKey ?? null],
  );
  // The original is gone (retention) or predates the record of ids: its number is not known here.
  return rows[0] ?? { id: message.id, seq: '0'.repeat(20) };
}

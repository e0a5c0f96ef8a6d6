import { logOptionsSchema } from '../../../config/sink-settings/log-settings.js';
import { renderMessage } from '../../../model/message-format.js';
import type { DeliveryAttempt, SendOutcome, Sink } from '../../../model/sink.js';

/**
 * Development protocol: one JSON line per message (the rendered message, parsed back when it is JSON), on stdout or
 * stderr. Done once the line is handed to the stream.
 */
export class LogSink implements Sink {
  constructor(
    private readonly write: (stream: 'stdout' | 'stderr', line: string) => void = (stream, line) =>
      process[stream].write(line),
  ) {}

  async send({ subscription, message, attempt }: DeliveryAttempt): Promise<SendOutcome> {
    const parsed = logOptionsSchema.safeParse(subscription.settings.options ?? {});
    if (!parsed.success)
      return { kind: 'dead', error: `options: ${parsed.error.issues.map((i) => i.message).join('; ')}` };
    const rendered = renderMessage(subscription.settings.format, message);
    let payload: unknown = rendered.body;
    try {
      payload = JSON.parse(rendered.body);
    } catch {
      // a text body stays text
    }
    const line = JSON.stringify({
      time: new Date().toISOString(),
      subscription: subscription.name,
      topic: message.topic,
      id: message.id,
      attempt,
      message: payload,
    });
    this.write(parsed.data.stream, `${line}\n`);
    return { kind: 'done' };
  }

  async close(): Promise<void> {}
}

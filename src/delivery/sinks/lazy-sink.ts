import type { DeliveryAttempt, SendOutcome, Sink } from '../../model/sink.js';

/**
 * A sink made at its first delivery, so that its module (and the client library it imports) is loaded only by a
 * process that delivers to its protocol. A module that cannot be loaded is a retry, never a throw, as for any sink.
 */
export class LazySink implements Sink {
  private loading: Promise<Sink> | null = null;

  constructor(private readonly load: () => Promise<Sink>) {}

  async send(attempt: DeliveryAttempt, signal: AbortSignal): Promise<SendOutcome> {
    const loading = (this.loading ??= this.load());
    let sink: Sink;
    try {
      sink = await loading;
    } catch (err) {
      // The next attempt tries the import again (a module installed since, say).
      if (this.loading === loading) this.loading = null;
      return {
        kind: 'retry',
        error: `loading the ${attempt.subscription.protocol} sink failed: ${(err as Error).message}`,
      };
    }
    return sink.send(attempt, signal);
  }

  async close(): Promise<void> {
    const sink = await this.loading?.catch(() => null);
    await sink?.close();
  }
}

import type { RowcastConfig, RowcastConfigInput, RowcastRuntime, RuntimeConfig } from '../../src/index.js';
import { applyConfig, createTestDatabase, startTestRowcast, type TestDatabase } from './database.js';
import { WebhookReceiver, type WebhookReceiverOptions } from './webhook-receiver.js';

/**
 * The receivers a scenario starts, by name: each value is what `WebhookReceiver.start` takes (a secret, or
 * options such as `reply`), or `{}` for an unsigned receiver that answers 200.
 */
export type ReceiverSpecs = Record<string, string | WebhookReceiverOptions>;

export interface ScenarioOptions<R extends ReceiverSpecs> {
  /** Receivers to start before the config is built; their URLs go into the config. */
  receivers?: R;
  /** SQL run on the scenario's database before the config is applied (the user tables). */
  tables?: string;
  /** The config to apply, built from the started receivers and the database; none: nothing is applied. */
  config?: (context: { db: TestDatabase } & { [K in keyof R]: WebhookReceiver }) => RowcastConfigInput;
  /** Runtime settings over `FAST_RUNTIME`; `false`: no rowcast is started (the test starts its own). */
  runtime?: Partial<RuntimeConfig> | false;
}

/** The scenario's own fields; a receiver may not take one of these names. */
const RESERVED = ['db', 'receivers', 'config', 'rowcast', 'close'];

export type Scenario<R extends ReceiverSpecs> = ScenarioParts<R> & { [K in keyof R]: WebhookReceiver };

export interface ScenarioParts<R extends ReceiverSpecs> {
  db: TestDatabase;
  /** The started receivers, by the names the options gave (each one is also a field of the scenario itself). */
  receivers: { [K in keyof R]: WebhookReceiver };
  /** The parsed config that was applied (undefined without `config`). */
  config: RowcastConfig | undefined;
  /** The in-process rowcast, started with the config's functions (undefined with `runtime: false`). */
  rowcast: RowcastRuntime;
  /** Stops rowcast, closes the receivers and drops the database, in that order; safe to call twice. */
  close(): Promise<void>;
}

/**
 * "A database, a rowcast, a receiver": what most e2e files set up in `before` and take down in `after`. Creates the
 * file's database, starts the receivers, runs `tables`, applies `config(receivers)` and starts an in-process rowcast
 * with the config's functions. If a step fails, what was started is stopped again before the error is thrown.
 *
 * ```ts
 * let close: () => Promise<void>;
 * before(async () => {
 *   ({ db, rowcast, receiver, close } = await scenario({
 *     receivers: { receiver: secret },
 *     tables: 'CREATE TABLE orders (id int PRIMARY KEY)',
 *     config: ({ receiver }) => ({ ... endpoint: receiver.url ... }),
 *   }));
 * });
 * after(() => close?.());
 * ```
 */
export async function scenario<R extends ReceiverSpecs = Record<never, never>>(
  options: ScenarioOptions<R>,
): Promise<Scenario<R>> {
  for (const name of Object.keys(options.receivers ?? {}))
    if (RESERVED.includes(name)) throw new Error(`a scenario's receiver cannot be called ${name}`);
  const db = await createTestDatabase();
  const receivers = {} as { [K in keyof R]: WebhookReceiver };
  let rowcast: RowcastRuntime | undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await rowcast?.stop();
    for (const r of Object.values(receivers) as WebhookReceiver[]) await r.close();
    await db.drop();
  };
  try {
    for (const [name, spec] of Object.entries(options.receivers ?? {}) as [keyof R, string | WebhookReceiverOptions][])
      receivers[name] = await WebhookReceiver.start(spec);
    if (options.tables) await db.pool.query(options.tables);
    const config = options.config ? await applyConfig(db.pool, options.config({ db, ...receivers })) : undefined;
    if (options.runtime !== false) rowcast = await startTestRowcast(db.url, options.runtime ?? {}, config?.functions);
    return { ...receivers, db, receivers, config, rowcast: rowcast!, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

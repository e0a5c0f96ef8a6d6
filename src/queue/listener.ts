import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { DatabaseSettings } from '../config/database-schema.js';
import type { Logger } from '../observability/logger.js';
import { createClient } from '../store/pool.js';

export const WAKE_CHANNEL = 'rowcast';
export const CONFIG_CHANNEL = 'rowcast_config';
/** The payload of a NOTIFY on WAKE_CHANNEL that announces deliveries made without routing (an SNS API Publish). */
export const DELIVERIES_PAYLOAD = 'deliveries';
/** The payload of rowcast.invoke's NOTIFY: invocations queued by SQL, without routing (migration 036). */
export const INVOCATIONS_PAYLOAD = 'invocations';

/**
 * A dedicated connection that LISTENs for wake-ups. It reconnects after any failure (PostgreSQL restart,
 * pg_terminate_backend); while it is down, the poll interval still finds all work — NOTIFY is only for latency.
 * Emits 'wake', 'config' and 'connected', and after 'wake' 'deliveries' or 'invocations' for a NOTIFY with
 * DELIVERIES_PAYLOAD or INVOCATIONS_PAYLOAD (and both once connected: what came while nobody listened).
 */
export class Listener extends EventEmitter {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryDelay = 100;
  private reconnectTimer: NodeJS.Timeout | null = null;
  backendPid: number | null = null;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
    private readonly database?: Partial<DatabaseSettings>,
  ) {
    super();
  }

  get connected(): boolean {
    return this.client !== null && this.backendPid !== null;
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = createClient(this.url, 'rowcast listener', this.database);
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      this.backendPid = null;
      client.removeAllListeners();
      client.on('error', () => {});
      void client.end().catch(() => {});
      if (this.stopped) return;
      this.log.warn({ err: err?.message }, 'listener connection lost; reconnecting (polling continues meanwhile)');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      this.emit(n.channel === CONFIG_CHANNEL ? 'config' : 'wake');
      if (n.channel === WAKE_CHANNEL && n.payload === DELIVERIES_PAYLOAD) this.emit('deliveries');
      if (n.channel === WAKE_CHANNEL && n.payload === INVOCATIONS_PAYLOAD) this.emit('invocations');
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}; LISTEN ${CONFIG_CHANNEL}`);
      this.backendPid = (client as unknown as { processID: number }).processID;
      this.retryDelay = 100;
      // Something may have happened while nobody listened: let everyone look.
      this.emit('connected');
      this.emit('wake');
      this.emit('deliveries');
      this.emit('invocations');
      this.emit('config');
    } catch (err) {
      lost(err as Error);
    }
  }

  private scheduleReconnect(): void {
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
  }
}

import type { PoolClient } from '../../store/pool.js';

/*
 * What the store holds of the config, read at the start of a plan: the plan compares it with the config file and
 * emits the statements that make the store match.
 */

/** Who made a topic or subscription: the config (through apply) or the SNS API (migration 017). */
export type Owner = 'config' | 'api';

export type TopicRow = {
  name: string;
  description: string | null;
  fifo: boolean;
  dedup_window_ms: number;
  fifo_dead_blocks: boolean;
  max_message_size: number;
  large_messages: string;
  claim_check_ttl_ms: string;
  signature_version: number;
  owner: Owner;
};

export type SubscriptionRow = {
  name: string;
  topic: string;
  protocol: string;
  endpoint: string;
  settings: unknown;
  filter_policy: unknown;
  filter_scope: string;
  dead_letter_topic: string | null;
  secret: string | null;
  secret_from_config: boolean;
  owner: Owner;
  cursor: boolean;
};

export type CaptureRow = {
  name: string;
  schema_name: string;
  table_name: string;
  settings: { hash?: string };
  function_name: string;
  triggers: string[];
};

export type FunctionRow = { name: string; settings: unknown };

export interface StoredConfig {
  topics: Map<string, TopicRow>;
  subscriptions: Map<string, SubscriptionRow>;
  captures: Map<string, CaptureRow>;
  functions: Map<string, FunctionRow>;
}

/** Every declared thing the store holds, each kind by name. */
export async function readStoredConfig(client: PoolClient): Promise<StoredConfig> {
  return {
    topics: await rowsByName<TopicRow>(
      client,
      'SELECT name, description, fifo, dedup_window_ms, fifo_dead_blocks, max_message_size, large_messages, claim_check_ttl_ms, signature_version, owner FROM rowcast.topics',
    ),
    subscriptions: await rowsByName<SubscriptionRow>(
      client,
      'SELECT name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, secret_from_config, owner, cursor FROM rowcast.subscriptions',
    ),
    captures: await rowsByName<CaptureRow>(
      client,
      'SELECT name, schema_name, table_name, settings, function_name, triggers FROM rowcast.captures',
    ),
    functions: await rowsByName<FunctionRow>(client, 'SELECT name, settings FROM rowcast.functions'),
  };
}

async function rowsByName<R extends { name: string }>(client: PoolClient, sql: string): Promise<Map<string, R>> {
  return new Map((await client.query<R>(sql)).rows.map((r) => [r.name, r]));
}

/** JSON with object keys sorted: a stored jsonb value equals the config's when their stable JSON does. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

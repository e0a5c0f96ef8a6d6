import type { RowcastConfig } from '../../config/schema.js';
import type { PoolClient } from '../../store/pool.js';
import { classifyAddress } from '../../delivery/sinks/http/address-policy.js';
import { readTableInfo, tableName } from '../../capture/table-info.js';

/**
 * What a config declares that is valid but known to fail at delivery time, one line each naming the key, the
 * problem and the fix. `apply` (and `--dry-run`) prints them; they do not stop it.
 */
export async function applyWarnings(client: PoolClient, config: RowcastConfig): Promise<string[]> {
  const warnings: string[] = [];
  for (const [name, sub] of Object.entries(config.subscriptions)) {
    if (sub.protocol !== 'http' && sub.protocol !== 'https') continue;
    const url = new URL(sub.endpoint);
    if (sub.protocol === 'https' && url.protocol === 'http:') {
      warnings.push(
        `subscriptions.${name}: protocol is https but the endpoint is an http:// URL, sent unencrypted; write the endpoint as https://${url.host}${url.pathname}, or protocol: http if plain HTTP is meant.`,
      );
    }
    if (!config.runtime.allowPrivateEndpoints) {
      const verdict =
        url.hostname === 'localhost'
          ? { public: false, address: 'localhost', range: 'loopback' }
          : classifyAddress(url.hostname);
      if (!verdict.public && verdict.range !== 'not an IP address') {
        warnings.push(
          `subscriptions.${name}.endpoint: ${verdict.address} is a ${verdict.range} address: deliveries to it are refused (webhook endpoints must be public); set runtime.allowPrivateEndpoints: true if it is meant to be internal.`,
        );
      }
    }
  }
  warnings.push(...(await stringNumberFilters(client, config)));
  return warnings;
}

type Policy = Record<string, unknown>;

/** The body keys (before.x, after.x) a policy tests with numbers or numeric conditions. */
function numericKeys(policy: Policy, path: string[] = [], found: string[][] = []): string[][] {
  for (const [key, value] of Object.entries(policy)) {
    if (key === '$or' && Array.isArray(value)) for (const branch of value) numericKeys(branch as Policy, path, found);
    else if (Array.isArray(value)) {
      if (value.some((c) => typeof c === 'number' || (typeof c === 'object' && c !== null && 'numeric' in c)))
        found.push([...path, key]);
    } else if (typeof value === 'object' && value !== null) numericKeys(value as Policy, [...path, key], found);
  }
  return found;
}

/**
 * bigint and numeric columns arrive as JSON strings (so that no consumer rounds them), and in a MessageBody policy a
 * number or a numeric condition never matches a string.
 */
async function stringNumberFilters(client: PoolClient, config: RowcastConfig): Promise<string[]> {
  const warnings: string[] = [];
  for (const [name, sub] of Object.entries(config.subscriptions)) {
    if (!sub.filterPolicy || sub.filterPolicyScope !== 'MessageBody') continue;
    const keys = numericKeys(sub.filterPolicy).filter((k) => k.length === 2 && (k[0] === 'before' || k[0] === 'after'));
    if (!keys.length) continue;
    for (const [capture, c] of Object.entries(config.captures)) {
      if (c.topic !== sub.topic) continue;
      const { schema, name: table } = tableName(c.table, `captures.${capture}.table`);
      const info = await readTableInfo(client, schema, table);
      for (const [root, column] of keys) {
        const col = info?.columns.find((x) => x.name === column);
        if (!col?.exactNumber) continue;
        warnings.push(
          `subscriptions.${name}.filterPolicy: ${root}.${column} is ${col.type} in ${schema}.${table}, sent as a JSON string (to keep its precision), so numbers and numeric conditions never match it; ` +
            `match the exact string (e.g. ["100.00"]), or filter in the capture instead (captures.${capture}.when, e.g. "NEW.${column} > 100").`,
        );
      }
    }
  }
  return warnings;
}

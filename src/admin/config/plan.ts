import type { RowcastConfig } from '../../config/schema.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import type { PoolClient } from '../../store/pool.js';
import { planMysqlSources } from '../../capture/mysql/apply-mysql.js';
import type { PlanStep, SourceInstall } from '../../capture/plan-step.js';
import { planPostgresSources } from '../../capture/postgres/apply-postgres.js';
import { planCaptures } from './plan-captures.js';
import { planPublication } from './plan-publication.js';
import { planSubscriptions } from './plan-subscriptions.js';
import { readStoredConfig, stableJson } from './stored-config.js';

/**
 * The statements that make the store match the config, in the order they can run: topics first (captures and
 * subscriptions refer to them), functions, subscriptions, captures (sources', then the store's own), the
 * publication, and last what the config no longer declares. What sources need on their own servers goes to
 * `installs`. Every problem found is collected, then thrown at once: nothing is applied.
 */
export async function planApply(
  client: PoolClient,
  config: RowcastConfig,
  installs: SourceInstall[],
  resync: string[] = [],
): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  const problems: string[] = [];
  for (const name of resync) {
    const source = config.sources[name];
    if (source?.kind !== 'mysql')
      problems.push(
        `--resync ${name}: ${source ? `source ${name} is a PostgreSQL server, read from its replication slot; there is no binlog position to resync` : `the config has no source "${name}"`}; name a MySQL source.`,
      );
    else if (!Object.values(config.captures).some((c) => c.source === name))
      problems.push(`--resync ${name}: no capture reads source ${name}, so nothing reads its binlog.`);
  }
  const { topics, subscriptions: subs, captures, functions } = await readStoredConfig(client);

  // Topics first: captures and subscriptions refer to them.
  for (const [name, topic] of Object.entries(config.topics)) {
    const existing = topics.get(name);
    const deadBlocks = topic.onDeadMessage === 'block-group';
    const params = [
      name,
      topic.description ?? null,
      topic.fifo,
      topic.dedupWindow,
      topic.maxMessageSize,
      topic.largeMessages,
      topic.claimCheckTtl,
      deadBlocks,
      topic.signatureVersion,
    ];
    const sql = `INSERT INTO rowcast.topics (name, description, fifo, dedup_window_ms, max_message_size, large_messages, claim_check_ttl_ms, fifo_dead_blocks, signature_version, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'config')
                 ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, fifo = EXCLUDED.fifo, dedup_window_ms = EXCLUDED.dedup_window_ms, fifo_dead_blocks = EXCLUDED.fifo_dead_blocks,
                   max_message_size = EXCLUDED.max_message_size, large_messages = EXCLUDED.large_messages, claim_check_ttl_ms = EXCLUDED.claim_check_ttl_ms,
                   signature_version = EXCLUDED.signature_version, owner = 'config', updated_at = now()`;
    if (!existing) steps.push({ summary: `+ topic ${name}${topic.fifo ? ' (FIFO)' : ''}`, sql, params });
    else {
      const changed = [
        (existing.description ?? undefined) !== topic.description && 'description',
        existing.fifo !== topic.fifo && 'fifo',
        existing.dedup_window_ms !== topic.dedupWindow && 'dedupWindow',
        existing.fifo_dead_blocks !== deadBlocks && 'onDeadMessage',
        existing.max_message_size !== topic.maxMessageSize && 'maxMessageSize',
        existing.large_messages !== topic.largeMessages && 'largeMessages',
        Number(existing.claim_check_ttl_ms) !== topic.claimCheckTtl && 'claimCheckTtl',
        existing.signature_version !== topic.signatureVersion && 'signatureVersion',
        existing.owner !== 'config' && 'made through the SNS API, now declared in the config',
      ].filter(Boolean);
      if (changed.length) steps.push({ summary: `~ topic ${name} (${changed.join(', ')})`, sql, params });
    }
  }

  for (const [name, fn] of Object.entries(config.functions)) {
    // The handler, its runtime and paths stay with the processes that run it; the database knows what SQL and status need.
    const {
      handler: _handler,
      environment: _environment,
      runtime: _runtime,
      directory: _directory,
      bootstrap: _bootstrap,
      ...settings
    } = fn;
    const existing = functions.get(name);
    if (!existing)
      steps.push({
        summary: `+ function ${name}`,
        sql: 'INSERT INTO rowcast.functions (name, settings) VALUES ($1, $2)',
        params: [name, settings],
      });
    else if (stableJson(existing.settings) !== stableJson(settings))
      steps.push({
        summary: `~ function ${name} (settings)`,
        sql: 'UPDATE rowcast.functions SET settings = $2, updated_at = now() WHERE name = $1',
        params: [name, settings],
      });
  }

  steps.push(...planSubscriptions(config, subs, problems));

  // Captures of MySQL sources: checked and recorded here; their databases get lambda_async (installs).
  steps.push(...(await planMysqlSources(client, config, captures, problems, installs, new Set(resync))));
  // Captures of other PostgreSQL servers: registered here; their publication, slot and identity are made there.
  steps.push(...(await planPostgresSources(client, config, captures, problems, installs)));
  steps.push(...(await planCaptures(client, config, captures, problems)));

  steps.push(...(await planPublication(client, config, problems)));

  for (const name of functions.keys()) {
    if (!config.functions[name])
      steps.push({
        summary: `- function ${name} (its queued invocations stay until it is declared again or retention removes them)`,
        sql: 'DELETE FROM rowcast.functions WHERE name = $1',
        params: [name],
      });
  }
  for (const [name, existing] of topics) {
    if (config.topics[name] || existing.owner !== 'config') continue;
    // Deleting the topic would delete its subscriptions, and with them what the SNS API made.
    const viaApi = [...subs.values()].filter((s) => s.topic === name && s.owner === 'api').map((s) => s.name);
    if (viaApi.length) {
      problems.push(
        `topics.${name}: removed from the config, but it has subscriptions made through the SNS API (${viaApi.join(', ')}); Unsubscribe them first, or keep the topic in the config.`,
      );
      continue;
    }
    steps.push({ summary: `- topic ${name}`, sql: 'DELETE FROM rowcast.topics WHERE name = $1', params: [name] });
  }

  if (problems.length)
    throw new RowcastError(
      ErrorCodes.CONFIG_INVALID,
      'The config does not match the database; nothing was applied:',
      problems,
    );
  return steps;
}

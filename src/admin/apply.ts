import { createHash } from 'node:crypto';
import { type RowcastConfig, type SubscriptionConfig, WEBHOOK_SECRET } from '../config/schema.js';
import { ErrorCodes, RowcastError } from '../model/errors.js';
import { redactEndpoint, redactSecrets } from '../observability/redact.js';
import { assertMigrated } from '../store/migrate.js';
import { ident, literal, qualified } from '../store/sql.js';
import type { Pool, PoolClient } from '../store/pool.js';
import { handshakeStatement } from '../delivery/sns-envelope/confirmation.js';
import { generateSecret, ROTATE_SECRET_SQL } from '../delivery/sinks/http/webhook-secret.js';
import { applyWarnings } from './apply-warnings.js';
import { readTableInfo, tableName } from '../capture/table-info.js';
import {
  dropSlots,
  isLogical,
  logicalCaptureDdl,
  logicalDecodingProblems,
  PUBLICATION,
  slotName,
} from '../capture/logical-ddl.js';
import { captureDdl, dropCaptureDdl } from '../capture/trigger-ddl.js';
import { planMysqlSources } from '../capture/mysql/apply-mysql.js';
import type { PlanStep, SourceInstall } from '../capture/plan-step.js';
import { planPostgresSources } from '../capture/postgres/apply-postgres.js';
import { APPLY_LOCK } from '../store/advisory-locks.js';

export type { PlanStep } from '../capture/plan-step.js';

export interface ApplyResult {
  steps: PlanStep[];
  applied: boolean;
  /** What the config declares that is valid but known to fail (private endpoints, numeric filters on strings…). */
  warnings: string[];
}

/** Who made a topic or subscription: the config (through apply) or the SNS API (migration 017). */
type Owner = 'config' | 'api';

/**
 * Reconciles the database with the config in one transaction: topics, subscriptions and capture triggers are
 * created, updated or removed so that they match. Either everything is applied or nothing is.
 */
export async function apply(
  pool: Pool,
  config: RowcastConfig,
  options: { dryRun?: boolean; onProgress?: (line: string) => void } = {},
): Promise<ApplyResult> {
  await assertMigrated(pool);
  const client = await pool.connect();
  const slot = slotName(await currentDatabase(client));
  const logical = Object.values(config.captures).some((c) => c.source === undefined && isLogical(c));
  const created: string[] = [];
  try {
    // One apply at a time per database, from the slot and publication made first to the commit.
    await client.query('SELECT pg_advisory_lock($1)', [APPLY_LOCK]);
    // Logical captures stream from a replication slot that must exist before their tables join the publication:
    // every change committed after this apply is then in the slot. The publication must exist before the slot
    // (decoding looks it up as of each decoded transaction), so both are made first, each committed on its own:
    // the publication empty (the apply's transaction names its tables), then the slot, from another connection
    // while this one holds no transaction (a new slot waits for running transactions to end).
    if (
      logical &&
      !options.dryRun &&
      !(await logicalDecodingProblems(client)).length &&
      !(await slotExists(client, slot))
    ) {
      if (!(await publicationExists(client))) {
        await client.query(`CREATE PUBLICATION ${ident(PUBLICATION)} WITH (publish_via_partition_root = true)`);
        created.push(`DROP PUBLICATION IF EXISTS ${ident(PUBLICATION)}`);
      }
      options.onProgress?.(`creating replication slot ${slot} (waits for running transactions to end)`);
      await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      created.push(`SELECT pg_drop_replication_slot(${literal(slot)})`);
    }
    await client.query('BEGIN');
    const installs: SourceInstall[] = [];
    const steps = await planApply(client, config, installs);
    const warnings = await applyWarnings(client, config);
    if (options.dryRun) {
      await client.query('ROLLBACK');
      return { steps, applied: false, warnings };
    }
    const changes = changesOf(steps).length;
    let change = 0;
    for (const [i, step] of steps.entries()) {
      // A change may take several statements (a capture's function and triggers): reported once, at its first.
      if (i === 0 || steps[i - 1]!.summary !== step.summary)
        options.onProgress?.(`[${++change}/${changes}] ${step.summary}`);
      try {
        await client.query(step.sql, step.params);
      } catch (err) {
        throw new RowcastError(
          ErrorCodes.CAPTURE_INVALID,
          `apply failed at "${step.summary}" and nothing was applied: ${(err as Error).message}`,
          [],
          { cause: err },
        );
      }
    }
    // What sources need on their servers (idempotent, so a rollback of the store's part leaves no harm).
    for (const install of installs) {
      options.onProgress?.(install.summary);
      const note = await install.run();
      if (note) options.onProgress?.(note);
    }
    // Running processes reload topics and subscriptions when they hear this.
    if (steps.length) await client.query(`SELECT pg_notify('rowcast_config', '')`);
    await client.query('COMMIT');
    // No logical capture left: the slot would keep write-ahead log for nobody. Its reader (if one streams) is
    // disconnected first; it finds no logical capture and waits for one.
    if (!logical && (await slotExists(client, slot))) {
      await dropSlots(client, { slot });
      options.onProgress?.(`dropped replication slot ${slot} (no logical capture left)`);
    }
    return { steps, applied: true, warnings };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    // Nothing half-applied: a slot made for captures that were not applied would keep write-ahead log forever.
    for (const undo of created.reverse()) await pool.query(undo).catch(() => {});
    throw err;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [APPLY_LOCK]).catch(() => {});
    client.release();
  }
}

/** The changes a plan makes, one line each: consecutive statements of one change share its summary. */
export function changesOf(steps: PlanStep[]): string[] {
  return steps.filter((s, i) => i === 0 || steps[i - 1]!.summary !== s.summary).map((s) => s.summary);
}

/**
 * Prints a plan as SQL, secrets masked (signing secrets, and passwords, tokens and header values in settings),
 * ending with the list of changes.
 */
export function formatPlan(steps: PlanStep[]): string {
  if (!steps.length) return '-- nothing to change: the database matches the config\n';
  const sql = steps
    .map((s) => {
      const params = s.params?.map((p, i) =>
        s.secretParams?.includes(i) && p !== null ? '<secret>' : redactSecrets(p),
      );
      return `-- ${s.summary}\n${s.sql};${params ? `\n-- parameters: ${JSON.stringify(params)}` : ''}\n`;
    })
    .join('\n');
  const changes = changesOf(steps);
  const summary = `-- would apply ${changes.length} change${changes.length === 1 ? '' : 's'} (nothing was changed; run apply without --dry-run to apply them):\n${changes.map((c) => `--   ${c}\n`).join('')}`;
  return `${sql}\n${summary}`;
}

async function planApply(client: PoolClient, config: RowcastConfig, installs: SourceInstall[]): Promise<PlanStep[]> {
  const steps: PlanStep[] = [];
  const problems: string[] = [];

  const topics = new Map(
    (
      await client.query<{
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
      }>(
        'SELECT name, description, fifo, dedup_window_ms, fifo_dead_blocks, max_message_size, large_messages, claim_check_ttl_ms, signature_version, owner FROM rowcast.topics',
      )
    ).rows.map((r) => [r.name, r]),
  );
  const subs = new Map(
    (
      await client.query<{
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
      }>(
        'SELECT name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, secret_from_config, owner FROM rowcast.subscriptions',
      )
    ).rows.map((r) => [r.name, r]),
  );
  const captures = new Map(
    (
      await client.query<{
        name: string;
        schema_name: string;
        table_name: string;
        settings: { hash?: string };
        function_name: string;
        triggers: string[];
      }>('SELECT name, schema_name, table_name, settings, function_name, triggers FROM rowcast.captures')
    ).rows.map((r) => [r.name, r]),
  );

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

  const functions = new Map(
    (await client.query<{ name: string; settings: unknown }>('SELECT name, settings FROM rowcast.functions')).rows.map(
      (r) => [r.name, r],
    ),
  );
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

  for (const [name, sub] of Object.entries(config.subscriptions)) {
    const existing = subs.get(name);
    const settings = subscriptionSettings(sub);
    const secret = resolveSecret(sub);
    if (secret !== undefined && !WEBHOOK_SECRET.test(secret)) {
      problems.push(
        `subscriptions.${name}.secret: the value of ${isWebhook(sub) && typeof sub.secret === 'object' ? `$${sub.secret.env}` : 'the secret'} is not a Standard Webhooks secret ("whsec_" + base64 of 24–64 bytes).`,
      );
      continue;
    }
    const columns = {
      topic: sub.topic,
      protocol: sub.protocol,
      endpoint: endpointOf(sub),
      settings,
      filter_policy: sub.filterPolicy ?? null,
      filter_scope: sub.filterPolicyScope,
      dead_letter_topic: sub.deadLetter?.topic ?? null,
    };
    const changed = existing
      ? (Object.keys(columns) as (keyof typeof columns)[]).filter(
          (k) => stableJson(existing[k]) !== stableJson(columns[k]),
        )
      : [];
    // A changed secret is rotated: the old one stays valid for the overlap (two signatures per request meanwhile).
    const rotate = existing && secret !== undefined && secret !== existing.secret;
    if (rotate) changed.push('secret' as never);
    if (existing && existing.owner !== 'config')
      changed.push('made through the SNS API, now declared in the config' as never);
    // Whether the config owns the secret (then `rowcast rotate-secret` refuses, as apply would undo it).
    if (existing && existing.secret_from_config !== (secret !== undefined) && !rotate) {
      changed.push(
        (secret !== undefined ? 'secret now declared in the config' : 'secret no longer in the config; kept') as never,
      );
    }
    if (existing && !changed.length) continue;
    steps.push({
      summary: existing
        ? `~ subscription ${name} (${changed.join(', ')})`
        : `+ subscription ${name} (${sub.protocol} ${redactEndpoint(endpointOf(sub))}) on topic ${sub.topic}`,
      sql: `INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, secret_from_config, owner)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'config')
            ON CONFLICT (name) DO UPDATE SET topic = EXCLUDED.topic, protocol = EXCLUDED.protocol, endpoint = EXCLUDED.endpoint,
              settings = EXCLUDED.settings, filter_policy = EXCLUDED.filter_policy, filter_scope = EXCLUDED.filter_scope,
              dead_letter_topic = EXCLUDED.dead_letter_topic, secret = COALESCE(rowcast.subscriptions.secret, EXCLUDED.secret),
              secret_from_config = EXCLUDED.secret_from_config, owner = 'config', updated_at = now()`,
      params: [
        name,
        columns.topic,
        columns.protocol,
        columns.endpoint,
        columns.settings,
        columns.filter_policy,
        columns.filter_scope,
        columns.dead_letter_topic,
        secret ?? (isWebhook(sub) ? generateSecret() : null),
        secret !== undefined,
      ],
      secretParams: [8],
    });
    // SNS's handshake: a new subscription that must be confirmed, or one that now must be, is sent a
    // SubscriptionConfirmation and gets nothing until confirmed; one that no longer needs it is confirmed.
    const confirmation = isWebhook(sub) && sub.format === 'sns' ? sub.confirmation : 'none';
    const wasRequired =
      (existing?.settings as { format?: string; confirmation?: string } | undefined)?.confirmation === 'required';
    if (confirmation === 'required' && (!existing || !wasRequired)) {
      const handshake = handshakeStatement(name, 'SubscriptionConfirmation');
      steps.push({
        summary: `~ subscription ${name}: send SNS's SubscriptionConfirmation (it receives nothing until confirmed)`,
        sql: handshake.sql,
        params: handshake.params,
        secretParams: [1, 4],
      });
    } else if (confirmation === 'none' && wasRequired) {
      steps.push({
        summary: `~ subscription ${name}: no SNS confirmation needed any more (confirmed)`,
        sql: `UPDATE rowcast.subscriptions SET sns_state = 'confirmed', sns_state_changed_at = now() WHERE name = $1 AND sns_state = 'pending_confirmation'`,
        params: [name],
      });
    }
    if (rotate && isWebhook(sub)) {
      const overlap = sub.secretRotationOverlap;
      steps.push({
        summary: `~ subscription ${name}: rotate the signing secret (${overlap ? `the previous one stays valid for ${formatOverlap(overlap)}` : 'the previous one ends now'})`,
        sql: ROTATE_SECRET_SQL,
        params: [name, secret, overlap],
        secretParams: [1],
      });
    }
  }
  // What the SNS API made is the API's to remove (DeleteTopic, Unsubscribe): apply leaves it alone.
  for (const [name, existing] of subs) {
    if (!config.subscriptions[name] && existing.owner === 'config') {
      steps.push({
        summary: `- subscription ${name} (its undelivered deliveries are dropped)`,
        sql: 'DELETE FROM rowcast.subscriptions WHERE name = $1',
        params: [name],
      });
    }
  }

  // Captures of MySQL sources: checked and recorded here; their databases get lambda_async (installs).
  steps.push(...(await planMysqlSources(client, config, captures, problems, installs)));
  // Captures of other PostgreSQL servers: registered here; their publication, slot and identity are made there.
  steps.push(...(await planPostgresSources(client, config, captures, problems, installs)));

  for (const [name, capture] of Object.entries(config.captures)) {
    if (capture.source !== undefined) continue;
    const where = `captures.${name}.table`;
    const { schema, name: table } = tableName(capture.table, where);
    const info = await readTableInfo(client, schema, table);
    if (!info) {
      problems.push(
        `${where}: table ${schema}.${table} does not exist or is not visible to this database user; create it first, fix the name, or grant access.`,
      );
      continue;
    }
    const missing = (capture.columns ?? []).filter((c) => !info.columns.some((ic) => ic.name === c));
    if (missing.length) {
      problems.push(
        `captures.${name}.columns: ${schema}.${table} has no column ${missing.map((c) => `"${c}"`).join(', ')}; its columns are ${info.columns.map((c) => c.name).join(', ')}.`,
      );
      continue;
    }
    const ddl = isLogical(capture) ? logicalCaptureDdl(name, capture, info) : captureDdl(name, capture, info);
    const hash = createHash('sha256')
      .update(JSON.stringify([schema, table, capture.subject ?? null, capture.function ?? null, ddl.install]))
      .digest('hex');
    const existing = captures.get(name);
    // Unchanged, unless its triggers went behind rowcast's back (DROP … CASCADE, a table dropped and re-created).
    const triggersGone =
      existing?.settings.hash === hash ? !(await triggersPresent(client, info.oid, existing.triggers)) : undefined;
    // Old rows (DELETE's row, diffs, keys, unchanged large values of an UPDATE) are in the log only with REPLICA
    // IDENTITY FULL, on the table and on each partition (a partition logs its own old rows): checked on every apply,
    // so that a partition added later, or an identity changed behind rowcast's back, is set again.
    const needIdentity =
      isLogical(capture) && capture.operations.some((op) => op === 'UPDATE' || op === 'DELETE')
        ? await withoutFullIdentity(client, info.oid)
        : [];
    const identitySteps = needIdentity.map((t) => ({
      summary: `~ capture ${name}: REPLICA IDENTITY FULL on ${t} (old rows in the write-ahead log)`,
      sql: `ALTER TABLE ${t} REPLICA IDENTITY FULL`,
    }));
    if (triggersGone === false) {
      steps.push(...identitySteps);
      continue;
    }
    const target = capture.topic !== undefined ? `topic ${capture.topic}` : `function ${capture.function}`;
    const label = `${existing ? '~' : '+'} capture ${name} on ${schema}.${table} (${capture.operations.join(', ')} → ${target}, payload ${capture.payload})${triggersGone ? ': its triggers are missing, reinstalled' : ''}`;
    if (existing && (existing.schema_name !== schema || existing.table_name !== table)) {
      const gone = !(await readTableInfo(client, existing.schema_name, existing.table_name));
      for (const sql of dropCaptureDdl(
        {
          schema: existing.schema_name,
          table: existing.table_name,
          functionName: existing.function_name,
          triggers: existing.triggers,
        },
        !gone,
      )) {
        steps.push({ summary: `${label}: remove from ${existing.schema_name}.${existing.table_name}`, sql });
      }
    } else if (existing?.function_name && existing.function_name !== ddl.functionName) {
      // Switched between a trigger and logical capture: the old one goes entirely, in this same transaction.
      for (const sql of dropCaptureDdl(
        { schema, table, functionName: existing.function_name, triggers: existing.triggers },
        true,
      )) {
        steps.push({
          summary: `${label}: remove its ${existing.triggers.length ? 'triggers' : 'logical capture function'}`,
          sql,
        });
      }
    } else if (existing) {
      // Operations that were dropped from the config lose their triggers.
      for (const t of existing.triggers.filter((t) => !ddl.triggers.includes(t))) {
        steps.push({
          summary: `${label}: remove trigger ${t}`,
          sql: dropCaptureDdl({ schema, table, functionName: existing.function_name, triggers: [t] }, true)[0]!,
        });
      }
    }
    steps.push(...identitySteps);
    for (const sql of ddl.install) steps.push({ summary: label, sql });
    steps.push({
      summary: label,
      sql: `INSERT INTO rowcast.captures (name, schema_name, table_name, topic, function, subject, settings, function_name, triggers)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (name) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name, topic = EXCLUDED.topic,
          function = EXCLUDED.function, subject = EXCLUDED.subject, settings = EXCLUDED.settings, function_name = EXCLUDED.function_name,
          triggers = EXCLUDED.triggers, updated_at = now()`,
      params: [
        name,
        schema,
        table,
        capture.topic ?? null,
        capture.function ?? null,
        capture.subject ?? null,
        { hash, capture },
        ddl.functionName,
        ddl.triggers,
      ],
    });
  }
  for (const [name, existing] of captures) {
    if (config.captures[name]) continue;
    const label = `- capture ${name} on ${existing.schema_name}.${existing.table_name}`;
    // A source's capture has nothing installed in the store.
    if (!existing.function_name) {
      steps.push({ summary: label, sql: 'DELETE FROM rowcast.captures WHERE name = $1', params: [name] });
      continue;
    }
    const gone = !(await readTableInfo(client, existing.schema_name, existing.table_name));
    for (const sql of dropCaptureDdl(
      {
        schema: existing.schema_name,
        table: existing.table_name,
        functionName: existing.function_name,
        triggers: existing.triggers,
      },
      !gone,
    )) {
      steps.push({ summary: label, sql });
    }
    steps.push({ summary: label, sql: 'DELETE FROM rowcast.captures WHERE name = $1', params: [name] });
  }

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

/**
 * The publication lists exactly the tables of the logical captures (created, changed or dropped to match), with
 * partitions' changes published as their root table's. Checks first what logical decoding needs of the server.
 */
async function planPublication(client: PoolClient, config: RowcastConfig, problems: string[]): Promise<PlanStep[]> {
  const tables = new Map<string, { schema: string; name: string }>();
  for (const [name, capture] of Object.entries(config.captures)) {
    if (!isLogical(capture) || capture.source !== undefined) continue;
    const t = tableName(capture.table, `captures.${name}.table`);
    tables.set(qualified(t.schema, t.name), t);
  }
  if (tables.size) problems.push(...(await logicalDecodingProblems(client)));
  const { rows: current } = await client.query<{ schema: string; name: string }>(
    'SELECT schemaname AS schema, tablename AS name FROM pg_publication_tables WHERE pubname = $1',
    [PUBLICATION],
  );
  const exists = await publicationExists(client);
  const list = [...tables.keys()].sort().join(', ');
  if (!tables.size)
    return exists
      ? [
          {
            summary: `- publication ${PUBLICATION} (no logical capture left)`,
            sql: `DROP PUBLICATION ${ident(PUBLICATION)}`,
          },
        ]
      : [];
  if (!exists) {
    return [
      {
        summary: `+ publication ${PUBLICATION} for ${list}`,
        sql: `CREATE PUBLICATION ${ident(PUBLICATION)} FOR TABLE ${list} WITH (publish_via_partition_root = true)`,
      },
    ];
  }
  const same = current.length === tables.size && current.every((t) => tables.has(qualified(t.schema, t.name)));
  return same
    ? []
    : [
        {
          summary: `~ publication ${PUBLICATION}: ${list}`,
          sql: `ALTER PUBLICATION ${ident(PUBLICATION)} SET TABLE ${list}`,
        },
      ];
}

async function currentDatabase(client: PoolClient): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
}

async function publicationExists(client: PoolClient): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [PUBLICATION])).rowCount! > 0;
}

async function slotExists(client: PoolClient, slot: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount! > 0;
}

/** The table and its partitions (quoted, qualified) whose REPLICA IDENTITY is not FULL. */
async function withoutFullIdentity(client: PoolClient, tableOid: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    // pg_partition_tree() has no rows for a table that is not partitioned: the table itself is added.
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM (SELECT $1::oid AS relid, 0 AS level UNION SELECT relid, level FROM pg_partition_tree($1::oid::regclass)) AS t
       JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relreplident <> 'f' ORDER BY t.level, 1`,
    [tableOid],
  );
  return rows.map((r) => r.name);
}

/** Whether every one of a capture's triggers is (still) on its table. */
async function triggersPresent(client: PoolClient, tableOid: number, triggers: string[]): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1 AND tgname = ANY($2::text[])',
    [tableOid, triggers],
  );
  return rows[0]!.n === triggers.length;
}

/** What a delivering process needs besides the secret; a protocol's own options go to its sink as `options`. */
export function subscriptionSettings(sub: SubscriptionConfig): Record<string, unknown> {
  const common = {
    format: sub.format,
    deliveryPolicy: sub.deliveryPolicy,
    maxConcurrency: sub.maxConcurrency,
    ...(sub.disableAfter ? { disableAfter: sub.disableAfter } : {}),
  };
  if (isWebhook(sub))
    return {
      ...common,
      headers: sub.headers,
      ...(sub.format === 'sns' ? { rawMessageDelivery: sub.rawMessageDelivery, confirmation: sub.confirmation } : {}),
    };
  return { ...common, headers: {}, options: 'options' in sub ? sub.options : undefined };
}

/** Where a subscription delivers, in one line (status, logs; the function name for function subscriptions). */
export function endpointOf(sub: SubscriptionConfig): string {
  switch (sub.protocol) {
    case 'function':
      return sub.function;
    case 'email':
    case 'email-json':
      return `mailto:${sub.options.to.join(',')}`;
    case 'nats':
      return `nats:${sub.options.subject}`;
    case 'amqp':
      return `amqp:${sub.options.exchange || '(default exchange)'}/${sub.options.routingKey}`;
    case 'redis':
      return `redis:${sub.options.stream}`;
    case 'mqtt':
      return `mqtt:${sub.options.topic}`;
    case 'log':
      return `log:${sub.options.stream}`;
    default:
      return sub.endpoint;
  }
}

const isWebhook = (sub: SubscriptionConfig): sub is Extract<SubscriptionConfig, { protocol: 'http' | 'https' }> =>
  sub.protocol === 'http' || sub.protocol === 'https';

/** A webhook's signing secret from the config (or the environment variable it names). */
function resolveSecret(sub: SubscriptionConfig): string | undefined {
  if (!isWebhook(sub) || sub.secret === undefined) return undefined;
  return typeof sub.secret === 'string' ? sub.secret : process.env[sub.secret.env];
}

export { generateSecret };

/** "24h", "90m", "1500ms": an overlap for the plan. */
function formatOverlap(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

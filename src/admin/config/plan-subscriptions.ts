import { LOG_END_SQL } from '../../store/log-leases.js';
import { type RowcastConfig } from '../../config/schema.js';
import { type SubscriptionConfig, WEBHOOK_SECRET } from '../../config/subscription-schema.js';
import { redactEndpoint } from '../../observability/redact.js';
import type { PlanStep } from '../../capture/plan-step.js';
import { handshakeStatement, passUnconfirmedSql } from '../../delivery/sns-envelope/confirmation.js';
import { generateSecret, ROTATE_SECRET_SQL } from '../../delivery/sinks/http/webhook-secret.js';
import { stableJson, type SubscriptionRow } from './stored-config.js';
import { endpointOf, isWebhook, subscriptionSettings } from './subscription-settings.js';

/**
 * The steps that make the store's subscriptions match the config: each one created or updated (a changed signing
 * secret is rotated, SNS's handshake started or ended), and those the config made but no longer declares removed.
 * A secret that is not a Standard Webhooks secret is a problem: nothing is applied.
 */
export function planSubscriptions(
  config: RowcastConfig,
  subs: Map<string, SubscriptionRow>,
  problems: string[],
): PlanStep[] {
  const steps: PlanStep[] = [];
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
      cursor: sub.cursor,
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
    const summary = existing
      ? `~ subscription ${name} (${changed.join(', ')})`
      : `+ subscription ${name} (${sub.protocol} ${redactEndpoint(endpointOf(sub))}) on topic ${sub.topic}`;
    steps.push({
      summary,
      sql: `INSERT INTO rowcast.subscriptions (name, topic, protocol, endpoint, settings, filter_policy, filter_scope, dead_letter_topic, secret, secret_from_config, owner, cursor)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'config', $11)
            ON CONFLICT (name) DO UPDATE SET topic = EXCLUDED.topic, protocol = EXCLUDED.protocol, endpoint = EXCLUDED.endpoint,
              settings = EXCLUDED.settings, filter_policy = EXCLUDED.filter_policy, filter_scope = EXCLUDED.filter_scope, cursor = EXCLUDED.cursor,
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
        sub.cursor,
      ],
      secretParams: [8],
    });
    // SNS's handshake: a new subscription that must be confirmed, or one that now must be, is sent a
    // SubscriptionConfirmation and gets nothing until confirmed; one that no longer needs it is confirmed.
    const confirmation = isWebhook(sub) && sub.format === 'sns' ? sub.confirmation : 'none';
    const wasRequired =
      (existing?.settings as { format?: string; confirmation?: string } | undefined)?.confirmation === 'required';
    // A new topic's messages are read from its end on, as for a subscription made anew.
    const moved = !!existing?.cursor && existing.topic !== sub.topic;
    // Switched from rows on the same topic: its backlog may move onto the cursor (not while a handshake now begins:
    // the cursor would pass what an unconfirmed subscription is not sent). The step checks all of it again in SQL.
    const backlog =
      !!existing &&
      !existing.cursor &&
      existing.topic === sub.topic &&
      !sub.filterPolicy &&
      !config.topics[sub.topic]?.fifo &&
      !(confirmation === 'required' && !wasRequired);
    if (sub.cursor && (!existing?.cursor || moved)) {
      const start = cursorStart(name, moved, backlog);
      // A new subscription's cursor is part of making it (the default), not a change of its own.
      steps.push(existing ? start : { ...start, summary });
    }
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
        sql: `WITH confirmed AS (
                UPDATE rowcast.subscriptions SET sns_state = 'confirmed', sns_state_changed_at = now()
                 WHERE name = $1 AND sns_state = 'pending_confirmation' RETURNING name),
              ${passUnconfirmedSql('SELECT name FROM confirmed')}
              SELECT count(*) FROM confirmed`,
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
  // What the SNS API made is the API's to remove (DeleteTopic, Unsubscribe): apply leaves it alone, but for how it
  // reads its topic. Subscribe starts a cursor now, as apply does for a new subscription; one made before still has
  // rows, and the API has no attribute to switch it.
  for (const [name, existing] of subs) {
    if (config.subscriptions[name]) continue;
    if (existing.owner === 'config') {
      steps.push({
        summary: `- subscription ${name} (its undelivered deliveries are dropped)`,
        sql: 'DELETE FROM rowcast.subscriptions WHERE name = $1',
        params: [name],
      });
    } else if (!existing.cursor) {
      // One change in the plan: both steps share its summary.
      const start = cursorStart(name, false, true);
      const summary = start.summary.replace(
        `~ subscription ${name}:`,
        `~ subscription ${name} (made through the SNS API):`,
      );
      steps.push(
        {
          summary,
          sql: 'UPDATE rowcast.subscriptions SET cursor = true, updated_at = now() WHERE name = $1 AND NOT cursor',
          params: [name],
        },
        { ...start, summary },
      );
    }
  }
  return steps;
}

/**
 * A subscription switched to a cursor reads the messages drawn after this point; those before it have their rows.
 * A transaction that routed under the old setting but drew its seq later gives that message both (the same id twice,
 * never none). Switched back, the cursor drains what was routed under it, then goes (rowcast.lease_log_ranges);
 * switched on again meanwhile, it simply carries on.
 *
 * Switched from rows (`backlog`), the cursor also takes over the subscription's backlog where that is safe: the rows
 * of the messages after the topic's last one that is not a never-attempted pending row of it (one without a row, or
 * with one attempted, in flight, retrying, dead or done) are deleted, and the cursor starts just before the first of
 * them. Not with a filter policy, on a FIFO topic, before SNS's confirmation, nor while an earlier cursor still
 * drains. docs/architecture.md ("Cursors", "Switching") argues why this loses nothing.
 */
function cursorStart(name: string, moved: boolean, backlog: boolean): PlanStep {
  return {
    summary: `~ subscription ${name}: reads ${moved ? 'its new' : 'its'} topic through a cursor from the next message on${backlog ? ', and moves its backlog of pending deliveries never attempted (those after its last attempted one) onto the cursor' : ''}`,
    // Moved to another topic: it starts over from that topic's end; the old topic's unpassed messages are dropped
    // with the cursor's leases (their owners' completions are then refused).
    // Each part is materialised and read through the indexes it names, so the cost grows with the backlog (and the
    // topic's messages since its oldest movable row), never with its square or with the finished rows.
    sql: `WITH dropped AS (DELETE FROM rowcast.cursor_leases WHERE subscription = $1 AND $2::boolean),
          s AS MATERIALIZED (
            SELECT x.topic FROM rowcast.subscriptions x JOIN rowcast.topics t ON t.name = x.topic
             WHERE x.name = $1 AND $3::boolean AND x.filter_policy IS NULL AND x.sns_state = 'confirmed' AND NOT t.fifo
               AND NOT EXISTS (SELECT 1 FROM rowcast.cursors c WHERE c.subscription = $1)),
          -- The topic's messages whose open rows of the subscription (deliveries_due) are all movable: pending, never
          -- attempted, nothing in their log (and no group, were the topic FIFO once).
          movable AS MATERIALIZED (
            SELECT m.id, m.seq
              FROM rowcast.deliveries d JOIN rowcast.messages m ON m.id = d.message_id JOIN s ON s.topic = m.topic
             WHERE d.subscription = $1 AND d.state IN ('pending', 'in_flight')
             GROUP BY m.id, m.seq
            HAVING bool_and(d.state = 'pending' AND d.attempts = 0 AND d.attempt_log IS NULL AND d.group_key IS NULL)),
          -- The last message of the topic that is not movable (no open row, or one attempted or in flight): the
          -- backlog that moves is what comes after it.
          gap AS MATERIALIZED (
            SELECT coalesce(max(m.seq), 0) AS seq FROM s JOIN rowcast.messages m ON m.topic = s.topic
             WHERE m.seq >= (SELECT min(v.seq) FROM movable v) AND NOT EXISTS (SELECT 1 FROM movable v WHERE v.seq = m.seq)),
          -- A message of it with a finished row of the subscription besides (a cursor's failed attempt next to a row
          -- routed as it switched) ends it too; looked up per message (deliveries_message).
          finished AS MATERIALIZED (
            SELECT coalesce(max(v.seq), 0) AS seq FROM movable v, gap g
             WHERE v.seq > g.seq AND (SELECT count(*) FROM rowcast.deliveries d
                                       WHERE d.message_id = v.id AND d.subscription = $1 AND d.state IN ('done', 'dead')) > 0),
          backlog AS MATERIALIZED (
            SELECT v.id, v.seq FROM movable v, gap g, finished f WHERE v.seq > greatest(g.seq, f.seq)),
          -- Rechecked on each row's latest version as it is locked (a claim that committed meanwhile keeps its row);
          -- a row this statement locked cannot be claimed (SKIP LOCKED), and is gone once it commits.
          taken AS (
            DELETE FROM rowcast.deliveries d
             WHERE d.message_id = ANY (ARRAY(SELECT id FROM backlog)) AND d.subscription = $1
               AND d.state = 'pending' AND d.attempts = 0 AND d.attempt_log IS NULL AND d.group_key IS NULL
            RETURNING d.message_id)
          INSERT INTO rowcast.cursors (subscription, leased_to, start_seq)
          SELECT $1, p.seq, p.seq
            FROM (SELECT coalesce((SELECT min(m.seq) - 1 FROM rowcast.messages m WHERE m.id = ANY (ARRAY(SELECT message_id FROM taken))),
                                  ${LOG_END_SQL}) AS seq) p
          ON CONFLICT (subscription) DO UPDATE SET drain_writers = NULL, until_seq = NULL,
            leased_to = CASE WHEN $2::boolean THEN EXCLUDED.leased_to ELSE rowcast.cursors.leased_to END,
            start_seq = CASE WHEN $2::boolean THEN EXCLUDED.start_seq ELSE rowcast.cursors.start_seq END`,
    params: [name, moved, backlog],
  };
}

/** A webhook's signing secret from the config (or the environment variable it names). */
function resolveSecret(sub: SubscriptionConfig): string | undefined {
  if (!isWebhook(sub) || sub.secret === undefined) return undefined;
  return typeof sub.secret === 'string' ? sub.secret : process.env[sub.secret.env];
}

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

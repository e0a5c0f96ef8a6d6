import type { InvocationRecord } from '../../admin/inspect/invocations.js';
import type { Status } from '../../admin/inspect/status.js';

const age = (ms: number | null): string =>
  ms === null
    ? '-'
    : ms < 1000
      ? `${ms}ms`
      : ms < 120_000
        ? `${(ms / 1000).toFixed(1)}s`
        : `${Math.round(ms / 60_000)}m`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Who made a topic or subscription: the config (`rowcast apply`) or the SNS API (docs/sns.md). */
const madeBy = (owner: 'config' | 'api'): string => (owner === 'api' ? 'SNS API' : 'config');

/** rowcast status as people read it. */
export function formatStatus(status: Status): string {
  let out = `events waiting to be routed: ${status.events.unrouted} (oldest ${age(status.events.oldestUnroutedMs)})\n\n`;
  out +=
    table(
      ['CAPTURE', 'TABLE', 'TOPIC', 'MODE'],
      status.captures.map((c) => [c.name, c.table, c.topic ?? '-', c.mode]),
    ) + '\n';
  const slot = status.logicalCapture;
  if (slot) {
    const held = `${(slot.lagBytes / 2 ** 20).toFixed(1)} MB of log not yet captured`;
    out += slot.streaming
      ? `logical capture: slot ${slot.slot} streamed by a rowcast process; ${held}\n\n`
      : `logical capture: slot ${slot.slot} NOT streamed (start rowcast): PostgreSQL keeps its log meanwhile; ${held}\n\n`;
  }
  out +=
    table(
      ['TOPIC', 'SUBSCRIPTIONS', 'PENDING', 'IN FLIGHT', 'DEAD', 'UNMATCHED', 'MADE BY'],
      status.topics.map((t) => [
        t.name,
        String(t.subscriptions),
        String(t.pending),
        String(t.inFlight),
        String(t.dead),
        String(t.unmatched),
        madeBy(t.owner),
      ]),
    ) + '\n';
  out += table(
    ['SUBSCRIPTION', 'TOPIC', 'STATE', 'PENDING', 'IN FLIGHT', 'DEAD', 'OLDEST', 'MADE BY', 'LAST ERROR'],
    status.subscriptions.map((s) => [
      s.name,
      s.topic,
      s.state +
        (s.stateReason && s.state !== 'active' ? ` (${s.stateReason})` : '') +
        (s.confirmation === 'confirmed'
          ? ''
          : s.confirmation === 'pending'
            ? ', pending confirmation'
            : ', unsubscribed'),
      String(s.pending),
      String(s.inFlight),
      String(s.dead),
      age(s.oldestPendingMs),
      madeBy(s.owner),
      (s.lastError ?? '').slice(0, 80),
    ]),
  );
  return out;
}

/** rowcast invocations as people read it. */
export function formatInvocations(rows: InvocationRecord[]): string {
  if (!rows.length) return 'no invocations\n';
  return table(
    ['INVOCATION', 'FUNCTION', 'SOURCE', 'STATE', 'ATTEMPTS', 'DURATION', 'QUEUED', 'PUBLISHED', 'LAST ERROR'],
    rows.map((r) => [
      r.id,
      r.function,
      r.source,
      r.state,
      String(r.attempts),
      r.durationMs === null ? '-' : `${r.durationMs}ms`,
      r.createdAt.toISOString(),
      String(r.published.length),
      (r.lastError ?? '').slice(0, 80),
    ]),
  );
}

import { hash } from 'node:crypto';
import { uuidOfDigest } from './event-message.js';
import type { PublishedMessage } from './thread-protocol.js';

/**
 * The ids of what one run of an invocation publishes, derived as routing derives its messages' from the event: from
 * the invocation, the way it was published (`context.publish` or the SDK endpoint), what the message says, and how
 * many equal messages the run published before it. A run redone because a crash lost the commit that recorded it
 * (results commit without a WAL flush, docs/architecture.md) publishes the same ids, so a subscriber that got the
 * first run's messages sees the same messages again, never second ones. A run that publishes something else gets
 * other ids: an id never names two different messages. Concurrent publishes (Promise.all) may reach the run in
 * any order and still get the same ids.
 */
export class PublishedIds {
  /** How many messages of each content this run has published. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly invocation: string,
    private readonly via: 'context' | 'sdk',
  ) {}

  next(m: Omit<PublishedMessage, 'id'>): string {
    const content = contentDigest(this.invocation, this.via, m);
    const repeat = this.seen.get(content) ?? 0;
    this.seen.set(content, repeat + 1);
    // The first of its content (nearly every message) takes the digest itself: one hash per publish.
    return uuidOfDigest(repeat === 0 ? content : hash('sha256', `${content}/${repeat}`, 'hex'));
  }
}

/** The on-failure record of an invocation: one per invocation, whatever the attempt that failed last said. */
export function failureRecordId(invocation: string): string {
  return uuidOfDigest(hash('sha256', `${invocation}/on-failure`, 'hex'));
}

function contentDigest(invocation: string, via: string, m: Omit<PublishedMessage, 'id'>): string {
  const parts = [
    invocation,
    via,
    m.topic,
    m.contentType,
    m.subject,
    m.body,
    JSON.stringify(m.attributes),
    m.groupKey,
    m.dedupKey,
    m.protocolBodies ? JSON.stringify(m.protocolBodies) : null,
    m.attributeTypes ? JSON.stringify(m.attributeTypes) : null,
  ];
  // Each part with its length, so that no two different messages hash the same text; one string, hashed once.
  return hash('sha256', parts.map((p) => (p === null ? '-;' : `${p.length}:${p}`)).join(''), 'hex');
}

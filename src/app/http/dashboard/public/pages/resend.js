// Resend (Svix's "resend", Hasura's "redeliver"): a done or dead delivery sent again to its subscription as the same
// message, and a notice that follows it to its outcome.
import { useState } from 'preact/hooks';
import { html, post } from '../api.js';
import { ActionButton } from '../components.js';

export function ResendButton({ id, onResent }) {
  return html`<${ActionButton}
    label="Resend this delivery"
    action=${() => post(`deliveries/${encodeURIComponent(id)}/resend`)}
    describe=${() => ''}
    onDone=${onResent}
  />`;
}

const resends = (d) => (d?.attemptLog ?? []).filter((a) => a.outcome === 'resent').length;

/**
 * After start(), a notice that follows delivery `d` to its outcome ("Resent: 1. Delivered again…"); '' before. Until
 * the page has loaded the delivery with its new "resent" entry, what it shows is from before the resend.
 */
export function useFollowed(d, verb) {
  const [before, setBefore] = useState(null);
  const seen = before !== null && d && resends(d) > before;
  const notice =
    before === null || !d
      ? ''
      : seen && d.state === 'done'
        ? `${verb}: 1. Delivered again (same webhook-id).`
        : seen && d.state === 'dead'
          ? `${verb}: 1. It failed and is dead; see its attempts.`
          : `${verb}: 1. The delivery is pending again; this page follows it.`;
  return { notice, start: () => setBefore(resends(d)), reset: () => setBefore(null) };
}

import type { DeliverySearchItem } from '../../admin/inspect/delivery-search.js';

/** A row key as people write it back to --row-key: id=42, tenant=a,id=42. */
export function formatRowKey(key: Record<string, unknown> | null): string {
  if (!key) return '-';
  return Object.entries(key)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(',');
}

/** rowcast deliveries as people read it. */
export function formatDeliveries(items: DeliverySearchItem[], more: boolean): string {
  if (!items.length) return 'no deliveries\n';
  const header = [
    'DELIVERY',
    'SUBSCRIPTION',
    'CAPTURE',
    'OP',
    'ROW KEY',
    'STATE',
    'ATTEMPTS',
    'STATUS',
    'CREATED',
    'LAST ERROR',
  ];
  const rows = items.map((d) => [
    d.id,
    d.subscription,
    d.capture ?? '-',
    d.op ?? '-',
    formatRowKey(d.rowKey).slice(0, 60),
    d.state,
    String(d.attempts),
    d.lastStatus === null ? '-' : String(d.lastStatus),
    d.createdAt.toISOString(),
    d.state === 'done' ? '' : (d.lastError ?? '').slice(0, 80),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return (
    [line(header), ...rows.map(line)].join('\n') +
    '\n' +
    (more ? '(more: raise --limit, or narrow with --since/--until)\n' : '')
  );
}

import { readFileSync, writeFileSync } from 'node:fs';

/**
 * A figure of /proc/<pid>/status in MB (Linux), or undefined once the process is gone: VmRSS (resident now) or
 * VmHWM (the peak since the process started, or since resetPeakRss).
 */
export function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number | undefined {
  try {
    const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a new VmHWM period (Linux ≥ 4.0: `5` to clear_refs); false if the kernel does not allow it. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Milliseconds on the machine's monotonic clock (CLOCK_MONOTONIC through process.hrtime): every process on the
 * machine reads the same clock, so a commit time taken here and an arrival time taken in the receiver or a
 * baseline's worker process subtract meaningfully, with microsecond resolution (Date.now() has only ms).
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

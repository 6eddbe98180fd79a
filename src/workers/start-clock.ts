/**
 * When this worker's first module ran (epoch ms), for its start report. worker-main imports it first, so the time
 * after it to the end of worker-main's imports is what requiring the data plane costs. (A worker's
 * performance.timeOrigin is the process's, not the thread's.)
 */
export const threadStartedAt = performance.timeOrigin + performance.now();

/** Now, in epoch ms (the clock of threadStartedAt, comparable across threads). */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
